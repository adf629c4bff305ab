"""One trajectory for spectra: Langevin equilibration at a temperature, then NVE, every frame written as it comes.

A spectrum wants undisturbed dynamics (a thermostat broadens the bands), so the
production run is velocity Verlet; the Langevin phase before it only brings the
structure to the temperature (started from a minimum, NVE alone would settle near
half of it, since the kinetic energy shares itself with the potential). Each kept
frame holds what the calculator gave (energy, forces, dipole, charges) and the
momenta, which ``equiprop spectrum md`` reads; a model with the polarizability
target also stores ``info["polarizability"]`` (9 numbers, A^3, row-major) for
the Raman spectrum (and one with quadrupoles ``info["quadrupole"]``, e*A^2). A frame out of the :class:`~equiprop.sampling.guard.Guard`
bounds (oxygens collapsing, a proton torn off) stops the run: what came before
it is written, and the reason is returned.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import all_properties
from ase.calculators.singlepoint import SinglePointCalculator
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta
from ase.md.verlet import VelocityVerlet

from equiprop.sampling.guard import Guard


@dataclass(frozen=True)
class TrajectorySettings:
    """Temperature (K), times (fs), friction of the equilibration (1/fs)."""

    temperature: float = 300.0
    equilibrate_fs: float = 1000.0  # Langevin, not written
    production_fs: float = 10000.0  # NVE, written: 10 ps resolves about 3 cm^-1
    timestep_fs: float = 0.5  # flexible O-H bonds vibrate with a 9 fs period
    interval_fs: float = 1.0  # between written frames: above 16,000 cm^-1 Nyquist
    friction_per_fs: float = 0.01

    def __post_init__(self):
        if min(self.temperature, self.timestep_fs, self.interval_fs, self.production_fs) <= 0 or self.equilibrate_fs < 0:
            raise ValueError("the temperature, time step, frame interval and production time must be positive, "
                             "the equilibration not negative")
        steps = self.interval_fs / self.timestep_fs
        if abs(steps - round(steps)) > 1e-9:
            raise ValueError(f"the frame interval {self.interval_fs} fs is not a multiple of the "
                             f"{self.timestep_fs} fs time step")


def run_trajectory(atoms: Atoms, calc, write: Callable[[Atoms], None], settings: TrajectorySettings = TrajectorySettings(),
                   seed: int = 0, guard: Guard = Guard()) -> tuple[int, str | None]:
    """Equilibrate ``atoms`` (moved in place) and run NVE, calling ``write`` with each kept frame.

    Returns (frames written, why the run stopped early or None).
    """
    every = _steps(settings.interval_fs, settings)
    atoms.calc = calc
    thermalize_momenta(atoms, temperature_K=settings.temperature, rng=np.random.default_rng(seed))
    Stationary(atoms)
    ZeroRotation(atoms)
    if settings.equilibrate_fs > 0:
        Langevin(atoms, timestep=settings.timestep_fs * units.fs, temperature_K=settings.temperature,
                 friction=settings.friction_per_fs / units.fs, fixcm=False, rng=np.random.default_rng(seed + 1)
                 ).run(_steps(settings.equilibrate_fs, settings))
        Stationary(atoms)  # the thermostat's kicks leave a small drift and spin: NVE keeps them otherwise
        ZeroRotation(atoms)
    dynamics = VelocityVerlet(atoms, timestep=settings.timestep_fs * units.fs)
    written = 0
    for _ in range(_steps(settings.production_fs, settings) // every):
        dynamics.run(every)
        problem = guard.problem(atoms)
        if problem:
            return written, f"at {written * settings.interval_fs:.0f} fs of NVE: {problem}"
        write(frame(atoms, written * settings.interval_fs))
        written += 1
    return written, None


def frame(atoms: Atoms, time_fs: float) -> Atoms:
    """A copy of ``atoms`` with its momenta, the calculator's results and ``info`` (``md_time_fs``, the tensors)."""
    results = {k: v for k, v in atoms.calc.results.items() if k in all_properties}  # what extxyz can write
    copy = Atoms(atoms.numbers, atoms.positions, momenta=atoms.get_momenta(), cell=atoms.cell, pbc=atoms.pbc)
    copy.info["md_time_fs"] = float(time_fs)
    for key in ("quadrupole", "polarizability"):  # 3x3 tensors ASE's extxyz has no slot for
        if key in atoms.calc.results:
            copy.info[key] = np.asarray(atoms.calc.results[key], dtype=float).reshape(9)
    copy.calc = SinglePointCalculator(copy, **results)
    return copy


def _steps(time_fs: float, settings: TrajectorySettings) -> int:
    return int(round(time_fs / settings.timestep_fs))
