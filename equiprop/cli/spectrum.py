"""``equiprop spectrum harmonic`` (optimise, then frequencies and IR intensities by autograd) and
``equiprop spectrum md`` (IR and vibrational density of states from a trajectory)."""

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
    parser = commands.add_parser("spectrum", help="vibrational spectra: harmonic IR and Raman from a model (beside PBE0), IR and Raman from MD")
    kinds = parser.add_subparsers(dest="kind", required=True)
    harmonic = kinds.add_parser(
        "harmonic", help="optimise (BFGS), then frequencies, normal modes and IR intensities by autograd",
        description="Optimises the structure with the model (BFGS to --fmax), then takes the Hessian as the autograd "
                    "Jacobian of the forces and the dipole derivatives (atomic polar tensors) as that of the dipole, "
                    "and diagonalises the mass-weighted Hessian. Intensities are in (D/A)^2/amu, as "
                    "ase.vibrations.Infrared gives them. Writes OUT/modes.csv (freq_cm, ir_intensity: one row per mode "
                    "above --above cm^-1; with a polarizability model also raman_activity, 45 a'^2 + 7 g'^2 in "
                    "A^4/amu), OUT/spectrum.png and OUT/minimum.xyz.")
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
    harmonic.add_argument("--dft-reference", action="store_true",
                          help="also the labeller's PBE0/def2-SVP harmonic spectrum, drawn mirrored below: BFGS with DFT "
                               "forces from the model's minimum (--dft-fmax), then ase.vibrations.Infrared (central "
                               "differences, 0.01 A; 6N + 1 SCFs, cached in OUT/dft/ so a rerun resumes); writes "
                               "OUT/dft/modes.csv; with a polarizability model also the DFT Raman activities, the "
                               "finite-field polarizability at each displacement (7x the SCFs, cached in "
                               "OUT/dft/displacements-raman/) (pip install 'equiprop[label]'; minutes for a monomer, "
                               "hours for a hexamer)")
    harmonic.add_argument("--dft-fmax", type=float, default=5e-3, help="BFGS convergence of the DFT minimum, eV/A")
    harmonic.add_argument("--overwrite", action="store_true", help="replace an existing OUT/modes.csv")
    harmonic.set_defaults(run=run_harmonic)
    add_md_command(kinds)


def add_md_command(kinds) -> None:
    md = kinds.add_parser(
        "md", help="IR spectrum and vibrational density of states from an MD trajectory with dipoles",
        description="Reads a trajectory whose frames hold the dipole (e*A; what ASE writes to extxyz from the equiprop "
                    "calculator, or --dipole-key) and, for the density of states, momenta (else velocities from "
                    "positions by central differences). IR: the Fourier transform of the dipole-derivative "
                    "autocorrelation over kT, in (D/A)^2/amu per cm^-1, so a band's area is the harmonic intensity "
                    "of its mode; density of states: integrates to the degrees of freedom. Hann window on the lags; "
                    "resolution 1/(c * max lag). Writes OUT/ir.csv, OUT/vdos.csv and OUT/spectrum.png "
                    "(equiprop/spectra/dynamics.py).")
    md.add_argument("trajectory", help="frames in time order (extxyz or any format ASE reads)")
    md.add_argument("--out", required=True)
    md.add_argument("--dt", type=float, required=True, help="time between frames, fs")
    md.add_argument("--temperature", type=float, required=True, help="K: the run's temperature (scales the spectra)")
    md.add_argument("--dipole-key", default="dipole", help="per-frame dipole: info key or calculator result (default dipole)")
    md.add_argument("--qcf", choices=["harmonic", "standard", "schofield"], default="harmonic",
                    help="quantum correction factor (default harmonic: the classical dipole-derivative spectrum)")
    md.add_argument("--raman", action="store_true",
                    help="also isotropic and anisotropic Raman spectra from each frame's polarizability (A^3, 3x3 or 9 "
                         "numbers, --polarizability-key): OUT/raman.csv, in A^4/amu per cm^-1 (band areas = Raman activities)")
    md.add_argument("--polarizability-key", default="polarizability", help="per-frame polarizability (info or calculator results)")
    md.add_argument("--max-lag", type=float, help="longest correlation lag, fs (default: half the run)")
    md.add_argument("--harmonic", help="a modes.csv of `spectrum harmonic` drawn as sticks on the IR panel")
    md.add_argument("--overwrite", action="store_true", help="replace an existing OUT/ir.csv")
    md.set_defaults(run=run_md)


def run_harmonic(args) -> int:
    from equiprop.spectra.harmonic import harmonic
    from equiprop.spectra.plot import Sticks, plot_harmonic

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
    raman = None if result.raman_activities is None else result.raman_activities[keep]
    write_modes(out / "modes.csv", result.frequencies[keep], result.intensities[keep], raman)
    if args.dft_reference:
        reference = dft_harmonic(atoms, out / "dft", args, raman=raman is not None)
    plot_harmonic(out / "spectrum.png", Sticks(result.frequencies[keep], result.intensities[keep], raman),
                  args.width, label=f"model ({args.checkpoint})",
                  reference=reference, reference_label="PBE0/def2-SVP" if args.dft_reference else args.reference)
    report(result, keep, args)
    return 0


def dft_harmonic(start: Atoms, folder: Path, args, raman: bool) -> "Sticks":
    """The labeller's minimum near ``start`` and its harmonic (frequencies, intensities) above ``--above``;
    with ``raman`` (a polarizability model) also its Raman activities, in OUT/dft/modes.csv."""
    from equiprop.errors import require
    from equiprop.labelling.calculator import DFTCalculator
    from equiprop.labelling.settings import DFTSettings
    from equiprop.spectra.plot import Sticks
    from equiprop.spectra.reference import finite_difference_harmonic

    require("pyscf", "label")
    folder.mkdir(parents=True, exist_ok=True)
    minimum_path = folder / "minimum.xyz"
    if minimum_path.is_file():  # resumed: the DFT minimum is done
        atoms = read_structures(minimum_path)[0]
    else:
        atoms = Atoms(start.numbers, start.positions)
        atoms.calc = DFTCalculator()
        if not BFGS(atoms, logfile=str(folder / "bfgs.log")).run(fmax=args.dft_fmax, steps=200):
            raise InputError(f"{args.structure}: the DFT BFGS did not reach --dft-fmax {args.dft_fmax} eV/A in 200 steps")
        atoms = Atoms(atoms.numbers, atoms.positions)
        write_structures(minimum_path, [atoms])
    atoms.calc = DFTCalculator(DFTSettings(polarizability=raman))
    result = finite_difference_harmonic(atoms, folder, raman=raman)
    keep = result.frequencies > args.above  # imaginary modes: 0 here, so left out
    activities = None if result.raman_activities is None else result.raman_activities[keep]
    write_modes(folder / "modes.csv", result.frequencies[keep], result.intensities[keep], activities)
    return Sticks(result.frequencies[keep], result.intensities[keep], activities)


def minimise(atoms: Atoms, model, args) -> None:
    atoms.calc = EquipropCalculator(model)
    if not BFGS(atoms, logfile=None).run(fmax=args.fmax, steps=args.steps):
        raise InputError(f"structure {args.index} of {args.structure}: BFGS did not reach fmax {args.fmax} eV/A "
                         f"in {args.steps} steps; raise --steps or --fmax")
    atoms.calc = None


def report(result, keep, args) -> None:
    imaginary = int(np.sum(result.frequencies < -args.above))
    print(f"{len(keep)} vibrations above {args.above:g} cm^-1 -> {Path(args.out) / 'modes.csv'}")
    raman = [None] * len(keep) if result.raman_activities is None else result.raman_activities[keep]
    for freq, inten, activity in zip(result.frequencies[keep], result.intensities[keep], raman):
        line = f"  {freq:8.1f} cm^-1  {inten:9.4f} (D/A)^2/amu"
        print(line if activity is None else f"{line}  {activity:9.4f} A^4/amu (Raman)")
    if imaginary:
        print(f"warning: {imaginary} imaginary modes below -{args.above:g} cm^-1: not a minimum of the model")


def write_modes(path: Path, frequencies, intensities, raman=None) -> None:
    """``freq_cm, ir_intensity`` (and ``raman_activity``, A^4/amu, for a polarizability model) per mode."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["freq_cm", "ir_intensity"] + (["raman_activity"] if raman is not None else []))
        for k, (f, i) in enumerate(zip(frequencies, intensities)):
            writer.writerow([f"{f:.3f}", f"{i:.6g}"] + ([f"{raman[k]:.6g}"] if raman is not None else []))


def read_modes(path) -> "Sticks":
    """The modes of a modes.csv (with Raman activities if it has the column); InputError naming the file and column."""
    from equiprop.spectra.plot import Sticks

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for column in ("freq_cm", "ir_intensity"):
        if not rows or column not in rows[0]:
            raise InputError(f"{path}: no column {column!r} (expected freq_cm, ir_intensity)")
    columns = ("freq_cm", "ir_intensity") + (("raman_activity",) if "raman_activity" in rows[0] else ())
    try:
        return Sticks(*(np.array([float(row[c]) for row in rows]) for c in columns))
    except ValueError as error:
        raise InputError(f"{path}: not a number ({error})") from None


def run_md(args) -> int:
    from equiprop.spectra.dynamics import ir_spectrum, raman_spectra, vibrational_dos
    from equiprop.spectra.plot import plot_dynamics

    out = Path(args.out)
    if (out / "ir.csv").exists() and not args.overwrite:
        raise InputError(f"{out / 'ir.csv'}: exists; pass --overwrite to replace it")
    if args.dt <= 0 or args.temperature <= 0:
        raise InputError(f"--dt and --temperature must be positive, got {args.dt} and {args.temperature}")
    sticks = read_modes(args.harmonic) if args.harmonic else None
    frames = read_structures(args.trajectory)
    if len(frames) < 16:
        raise InputError(f"{args.trajectory}: {len(frames)} frames; a spectrum needs a run (at least 16 frames)")
    max_lag = None if args.max_lag is None else max(2, min(int(args.max_lag / args.dt), len(frames)))
    ir = ir_spectrum(frame_tensors(frames, args, args.dipole_key, (3,)), args.dt, args.temperature, max_lag, args.qcf)
    raman = None
    if args.raman:
        alphas = frame_tensors(frames, args, args.polarizability_key, (3, 3))
        raman = raman_spectra(alphas, args.dt, args.temperature, max_lag, args.qcf)
    signal, source = frame_velocities(frames)
    vdos = vibrational_dos(signal, frames[0].get_masses(), args.dt, args.temperature, max_lag,
                           positions=source != "momenta")
    out.mkdir(parents=True, exist_ok=True)
    write_columns(out / "ir.csv", ["wavenumber_cm", "ir_per_cm"], ir.wavenumbers, ir.values)
    write_columns(out / "vdos.csv", ["wavenumber_cm", "states_per_cm"], vdos.wavenumbers, vdos.values)
    if raman is not None:
        write_columns(out / "raman.csv", ["wavenumber_cm", "isotropic_per_cm", "anisotropic_per_cm", "total_per_cm"],
                      raman[0].wavenumbers, raman[0].values, raman[1].values, raman[0].values + raman[1].values)
    plot_dynamics(out / "spectrum.png", ir, vdos, sticks=sticks, raman=raman, title=f"{len(frames)} frames, {args.dt:g} fs apart, "
                  f"{args.temperature:g} K, {args.qcf} QCF; resolution {ir.resolution:.1f} cm$^{{-1}}$")
    print(f"{len(frames)} frames ({len(frames) * args.dt / 1000:.2f} ps), resolution {ir.resolution:.1f} cm^-1, "
          f"velocities from {source}: {out / 'ir.csv'}, {out / 'vdos.csv'}, {out / 'spectrum.png'}")
    if source == "momenta":  # a check on --temperature, which scales both spectra
        kinetic = np.mean([atoms.get_temperature() for atoms in frames])
        print(f"the frames' mean kinetic temperature: {kinetic:.0f} K (3N degrees of freedom; "
              f"{kinetic * 3 * len(frames[0]) / max(3 * len(frames[0]) - 6, 1):.0f} K for 3N - 6); --temperature {args.temperature:g}")
    return 0


def frame_tensors(frames, args, key: str, shape: tuple) -> np.ndarray:
    """``[n_frames, *shape]`` from each frame's info or calculator results under ``key`` (a 3x3 may be 9 numbers)."""
    values = []
    for k, atoms in enumerate(frames):
        results = atoms.calc.results if atoms.calc is not None else {}
        value = atoms.info.get(key, results.get(key))
        size = int(np.prod(shape))
        if value is None or np.size(value) != size:
            raise InputError(f"structure {k} of {args.trajectory}: no {size} numbers under {key!r} in info or "
                             f"calculator results (--{'dipole' if shape == (3,) else 'polarizability'}-key)")
        values.append(np.asarray(value, dtype=np.float64).reshape(shape))
    return np.array(values)


def frame_velocities(frames) -> tuple[np.ndarray, str]:
    """``[n_frames, n_atoms, 3]``: velocities (Angstrom/fs) from the frames' momenta, or else their positions."""
    from ase import units

    if all("momenta" in atoms.arrays for atoms in frames):
        return np.array([atoms.get_velocities() for atoms in frames]) * units.fs, "momenta"
    return np.array([atoms.positions for atoms in frames]), "positions (no momenta in the frames)"


def write_columns(path: Path, names, *columns) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(names)
        writer.writerows([f"{v:.6g}" for v in row] for row in zip(*columns))
