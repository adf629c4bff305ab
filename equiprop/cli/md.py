"""``equiprop md``: a trajectory for spectra, Langevin to the temperature and then NVE, frames with dipoles."""

from pathlib import Path

from equiprop.data.io import read_structures
from equiprop.errors import InputError


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "md", help="molecular dynamics with a model: Langevin equilibration, then NVE frames for `spectrum md`",
        description="Equilibrates the structure with a Langevin thermostat (not written), then runs velocity Verlet "
                    "(NVE) and writes a frame every --every fs as it comes: positions, momenta, the model's energy, "
                    "forces, dipole and charges, and info['polarizability'] / info['quadrupole'] (9 numbers) when the "
                    "model predicts them. Stops early, keeping what it wrote, when oxygens come closer than 2.1 A or a "
                    "proton leaves (exit 1). Then: equiprop spectrum md OUT --dt EVERY --temperature T "
                    "(equiprop/sampling/trajectory.py).")
    parser.add_argument("checkpoint", help="checkpoint file, e.g. RUN_DIR/best.pt (a committee integrates its mean)")
    parser.add_argument("structure", help="the start (first frame of any file ASE reads)")
    parser.add_argument("--out", required=True, help="extxyz trajectory to write")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--equilibrate", type=float, default=1000.0, help="fs of Langevin before NVE (default 1000)")
    parser.add_argument("--time", type=float, default=10000.0,
                        help="fs of NVE written (default 10000: 10 ps resolves about 3 cm^-1)")
    parser.add_argument("--dt", type=float, default=0.5, help="time step, fs (default 0.5)")
    parser.add_argument("--every", type=float, default=1.0, help="fs between written frames, a multiple of --dt (default 1)")
    parser.add_argument("--minimise", type=float, metavar="FMAX",
                        help="BFGS with the model to this force (eV/A) before the dynamics")
    parser.add_argument("--seed", type=int, default=0, help="velocities and thermostat noise")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(run=run_md)


def run_md(args) -> int:
    import ase.io
    import numpy as np
    from ase.optimize import BFGS

    from equiprop.calculator import EquipropCalculator
    from equiprop.sampling.trajectory import TrajectorySettings, run_trajectory

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"{out}: exists; pass --overwrite to replace it")
    try:
        settings = TrajectorySettings(temperature=args.temperature, equilibrate_fs=args.equilibrate,
                                      production_fs=args.time, timestep_fs=args.dt, interval_fs=args.every)
    except ValueError as error:  # --temperature, --equilibrate, --time, --dt, --every
        raise InputError(f"{error} (--temperature, --equilibrate, --time, --dt, --every)") from None
    atoms = read_structures(args.structure)[0]
    calc = EquipropCalculator(args.checkpoint, device=args.device)
    if args.minimise is not None:
        atoms.calc = calc
        if not BFGS(atoms, logfile=None).run(fmax=args.minimise, steps=1000):
            raise InputError(f"{args.structure}: BFGS did not reach --minimise {args.minimise} eV/A in 1000 steps")
    temperatures = []
    with open(out, "w") as handle:
        def write(frame):
            ase.io.write(handle, frame, format="extxyz")
            handle.flush()
            temperatures.append(frame.get_temperature())

        written, stopped = run_trajectory(atoms, calc, write, settings, seed=args.seed)
    dof = 3 * len(atoms)
    mean = float(np.mean(temperatures)) * dof / max(dof - 6, 1) if temperatures else float("nan")
    print(f"{written} frames ({written * args.every / 1000:g} ps of NVE, {args.every:g} fs apart) -> {out}; "
          f"mean kinetic temperature {mean:.0f} K over 3N - 6 degrees of freedom")
    if stopped:
        print(f"stopped {stopped}: the model left the region it knows (docs/active-learning.md)")
        return 1
    print(f"next: equiprop spectrum md {out} --dt {args.every:g} --temperature {mean:.0f} --out ir-md"
          + (" --raman" if temperatures and "polarizability" in calc.results else ""))
    return 0
