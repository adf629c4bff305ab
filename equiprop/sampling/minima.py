"""Local minima with a model: BFGS (ASE) from random or sampled starting structures."""

from dataclasses import dataclass

from ase import Atoms
from ase.optimize import BFGS

from equiprop.sampling.guard import Guard
from equiprop.sampling.md import with_charge


@dataclass(frozen=True)
class RelaxSettings:
    fmax: float = 0.05  # eV/Angstrom, largest force component at convergence
    steps: int = 400
    maxstep: float = 0.1  # Angstrom per BFGS step: small, so a model with holes is not jumped into them


def relax(atoms: Atoms, calc, settings: RelaxSettings = RelaxSettings(), guard: Guard = Guard()) -> tuple[Atoms, str | None]:
    """The BFGS minimum of ``atoms`` (a copy) and a reason if it is unusable (not converged, out of bounds)."""
    moving = with_charge(Atoms(atoms.numbers, atoms.positions), atoms)
    moving.calc = calc
    converged = BFGS(moving, logfile=None, maxstep=settings.maxstep).run(fmax=settings.fmax, steps=settings.steps)
    minimum = with_charge(Atoms(moving.numbers, moving.positions), atoms)
    minimum.info.update(sample="minimum")
    if not converged:
        return minimum, f"BFGS not converged to fmax {settings.fmax} in {settings.steps} steps"
    return minimum, guard.problem(minimum)
