"""``equiprop label`` and ``equiprop make-clusters``: new reference data."""

import argparse
import sys

from equiprop.data.io import write_structures


def add_commands(commands) -> None:
    label = commands.add_parser("label", help="compute DFT labels with PySCF (needs equiprop[label])")
    label.add_argument("input", help="structures to label (any ASE-readable file)")
    label.add_argument("output", help="extxyz to write; an existing one is resumed")
    label.add_argument("--xc", default="pbe0", help="exchange-correlation functional (default: pbe0)")
    label.add_argument("--basis", default="def2-svp", help="basis set (default: def2-svp)")
    label.add_argument("--grid-level", type=int, default=3, help="PySCF grid level of the SCF (default: 3)")
    label.add_argument("--no-density-fit", action="store_true", help="exact Coulomb/exchange instead of density fitting")
    label.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                       help="cuda: SCF and gradients on a GPU through gpu4pyscf (pip install 'equiprop[gpu]'), same keys "
                            "and units (default: cpu)")
    label.add_argument("--polarizability", action="store_true",
                       help="also dft_polarizability (info, 3x3, A^3) by finite fields: six more SCFs per structure")
    label.add_argument("--field", type=float, default=0.001, help="finite-field strength, atomic units (default 0.001)")
    label.add_argument("--overwrite", action="store_true", help="replace the output instead of resuming it")
    label.set_defaults(run=run_label)

    make = commands.add_parser("make-clusters", help="random non-overlapping molecular clusters")
    make.add_argument("output", help="extxyz to write")
    make.add_argument("--molecule", default="H2O", help="ASE molecule name (default: H2O)")
    make.add_argument("--n", default="2-9", help="molecules per cluster: '2-9' or '2,4,8' (default: 2-9)")
    make.add_argument("--count", type=int, default=100, help="number of clusters (default: 100)")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--ion", choices=["H3O+", "OH-"],
                      help="one ion per cluster besides the --n molecules (info['charge'] set): protonated or "
                           "deprotonated water clusters")
    make.add_argument("--apart", metavar="MIN-MAX",
                      help="add one more molecule to each cluster, its closest atom MIN-MAX Angstrom from the "
                           "cluster (separated fragments, e.g. 4.5-9 with --ion: charge must stay on the ion)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing output")
    make.set_defaults(run=run_make_clusters)


def run_label(args: argparse.Namespace) -> int:
    from equiprop.labelling.run import label_file
    from equiprop.labelling.settings import DFTSettings

    settings = DFTSettings(xc=args.xc, basis=args.basis, grid_level=args.grid_level, density_fit=not args.no_density_fit,
                           device=args.device, polarizability=args.polarizability, field=args.field)
    report = label_file(args.input, args.output, settings, overwrite=args.overwrite, log=lambda m: print(m, file=sys.stderr))
    print(f"labelled {len(report.written)} structures ({report.resumed} from before) into {args.output}")
    if report.skipped:
        print(f"not converged, not written: structures {report.skipped}", file=sys.stderr)
        return 1
    return 0


def parse_sizes(text: str) -> list[int]:
    """``"2-9"`` -> [2, ..., 9]; ``"2,4"`` -> [2, 4]."""
    try:
        if "-" in text:
            low, high = (int(v) for v in text.split("-"))
            sizes = list(range(low, high + 1))
        else:
            sizes = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--n {text!r}: expected a range like 2-9 or a list like 2,4,8") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--n {text!r}: sizes must be positive")
    return sizes


def parse_range(text: str) -> tuple[float, float]:
    """``"4.5-9"`` -> (4.5, 9.0), Angstrom, ``0 < MIN <= MAX``."""
    try:
        low, high = (float(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--apart {text!r}: expected MIN-MAX in Angstrom, like 4.5-9") from None
    if not 0 < low <= high:
        raise argparse.ArgumentTypeError(f"--apart {text!r}: need 0 < MIN <= MAX")
    return low, high


def run_make_clusters(args: argparse.Namespace) -> int:
    from equiprop.labelling.clusters import make_clusters

    clusters = make_clusters(args.molecule, parse_sizes(args.n), args.count, args.seed, ion=args.ion,
                             apart=parse_range(args.apart) if args.apart else None)
    write_structures(args.output, clusters, overwrite=args.overwrite)
    print(f"wrote {len(clusters)} clusters of {args.molecule} to {args.output}")
    return 0
