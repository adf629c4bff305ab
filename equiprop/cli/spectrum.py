"""``equiprop spectrum harmonic``: optimise, then harmonic frequencies and IR intensities by autograd."""

import csv
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.optimize import BFGS

from equiprop.calculator import EquipropCalculator
from equiprop.data.io import read_structures, write_structures
from equiprop.errors import InputError
from equiprop.models.checkpoint import load_model


def add_commands(commands) -> None:
    parser = commands.add_parser("spectrum", help="vibrational spectra from a model: harmonic IR")
    kinds = parser.add_subparsers(dest="kind", required=True)
    harmonic = kinds.add_parser(
        "harmonic", help="optimise (BFGS), then frequencies, normal modes and IR intensities by autograd",
        description="Optimises the structure with the model (BFGS to --fmax), then takes the Hessian as the autograd "
                    "Jacobian of the forces and the dipole derivatives (atomic polar tensors) as that of the dipole, "
                    "and diagonalises the mass-weighted Hessian. Intensities are in (D/A)^2/amu, as "
                    "ase.vibrations.Infrared gives them. Writes OUT/modes.csv (freq_cm, ir_intensity: one row per mode "
                    "above --above cm^-1), OUT/spectrum.png and OUT/minimum.xyz.")
    harmonic.add_argument("checkpoint", help="best.pt of an energy model (with the dipole target for intensities)")
    harmonic.add_argument("structure", help="a structure file (extxyz or any format ASE reads)")
    harmonic.add_argument("--out", required=True, help="folder for modes.csv, spectrum.png, minimum.xyz")
    harmonic.add_argument("--index", type=int, default=0, help="which frame of the file (default: the first)")
    harmonic.add_argument("--fmax", type=float, default=1e-3, help="BFGS convergence, eV/A (default 1e-3)")
    harmonic.add_argument("--steps", type=int, default=2000, help="most BFGS steps")
    harmonic.add_argument("--no-optimize", action="store_true", help="use the structure as given (already a minimum)")
    harmonic.add_argument("--above", type=float, default=50.0, help="modes above this many cm^-1 are vibrations")
    harmonic.add_argument("--width", type=float, default=20.0, help="Lorentzian FWHM of the plotted envelope, cm^-1")
    harmonic.add_argument("--reference", help="a modes.csv (freq_cm, ir_intensity) drawn mirrored below, e.g. DFT")
    harmonic.add_argument("--overwrite", action="store_true", help="replace an existing OUT/modes.csv")
    harmonic.set_defaults(run=run_harmonic)


def run_harmonic(args) -> int:
    from equiprop.spectra.harmonic import harmonic
    from equiprop.spectra.plot import plot_harmonic

    out = Path(args.out)
    if (out / "modes.csv").exists() and not args.overwrite:
        raise InputError(f"{out / 'modes.csv'}: exists; pass --overwrite to replace it")
    reference = read_modes(args.reference) if args.reference else None
    frames = read_structures(args.structure)
    if not -len(frames) <= args.index < len(frames):
        raise InputError(f"{args.structure}: --index {args.index}: the file holds {len(frames)} structures")
    model = load_model(args.checkpoint)
    atoms = Atoms(frames[args.index].numbers, frames[args.index].positions)
    if not args.no_optimize:
        minimise(atoms, model, args)
    try:
        result = harmonic(model, atoms)
    except ValueError as error:
        raise InputError(f"{args.checkpoint}: {error}") from None
    out.mkdir(parents=True, exist_ok=True)
    write_structures(out / "minimum.xyz", [atoms], overwrite=True)
    keep = result.vibrations(args.above)
    write_modes(out / "modes.csv", result.frequencies[keep], result.intensities[keep])
    plot_harmonic(out / "spectrum.png", result.frequencies[keep], np.nan_to_num(result.intensities[keep]),
                  args.width, label=Path(args.checkpoint).name, reference=reference)
    report(result, keep, args)
    return 0


def minimise(atoms: Atoms, model, args) -> None:
    atoms.calc = EquipropCalculator(model)
    if not BFGS(atoms, logfile=None).run(fmax=args.fmax, steps=args.steps):
        raise InputError(f"structure {args.index} of {args.structure}: BFGS did not reach fmax {args.fmax} eV/A "
                         f"in {args.steps} steps; raise --steps or --fmax")
    atoms.calc = None


def report(result, keep, args) -> None:
    imaginary = int(np.sum(result.frequencies < -args.above))
    print(f"{len(keep)} vibrations above {args.above:g} cm^-1 -> {Path(args.out) / 'modes.csv'}")
    for freq, inten in zip(result.frequencies[keep], result.intensities[keep]):
        print(f"  {freq:8.1f} cm^-1  {inten:9.4f} (D/A)^2/amu")
    if imaginary:
        print(f"warning: {imaginary} imaginary modes below -{args.above:g} cm^-1: not a minimum of the model")


def write_modes(path: Path, frequencies, intensities) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["freq_cm", "ir_intensity"])
        writer.writerows([f"{f:.3f}", f"{i:.6g}"] for f, i in zip(frequencies, intensities))


def read_modes(path) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, intensities) of a modes.csv; InputError naming the file and column."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for column in ("freq_cm", "ir_intensity"):
        if not rows or column not in rows[0]:
            raise InputError(f"{path}: no column {column!r} (expected freq_cm, ir_intensity)")
    try:
        return tuple(np.array([float(row[c]) for row in rows]) for c in ("freq_cm", "ir_intensity"))
    except ValueError as error:
        raise InputError(f"{path}: not a number ({error})") from None
