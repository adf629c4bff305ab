"""One round's exploration: minima from random starts, then Langevin MD from those minima.

Every candidate frame carries ``info["sample"]`` (``minimum`` or ``md``), its
trajectory name and, for MD, temperature and time. The committee scores them
afterwards (:func:`score`).
"""

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from equiprop.labelling.clusters import make_clusters
from equiprop.sampling.guard import Guard
from equiprop.sampling.md import MDSettings, run_replicas
from equiprop.sampling.minima import RelaxSettings, relax


@dataclass(frozen=True)
class ExploreSettings:
    """What one round explores (sizes in molecules, temperatures in K)."""

    molecule: str = "H2O"
    sizes: tuple[int, ...] = tuple(range(2, 13))
    temperatures: tuple[float, ...] = (200.0, 300.0, 400.0)
    starts_per_size: int = 1  # random clusters relaxed per size
    md: MDSettings = field(default_factory=MDSettings)
    relax: RelaxSettings = field(default_factory=RelaxSettings)
    guard: Guard = field(default_factory=Guard)
    max_forces_std: float = 1.5  # eV/Angstrom: an MD replica stops beyond this (see Selection.high)


@dataclass
class Exploration:
    candidates: list[Atoms]
    minima: list[Atoms]
    stops: list[str]  # what ended each trajectory or relaxation early


def explore(committee, settings: ExploreSettings, seed: int, earlier_minima: list[Atoms] = (), log=print) -> Exploration:
    """Relax ``starts_per_size`` random clusters of each size, then run MD at each temperature from one per size.

    Relaxations follow the committee mean; MD follows member 0, and the whole
    committee judges each kept frame (its force spread stops a replica beyond
    ``max_forces_std``), as DP-GEN explores. MD replica of size n starts from
    this round's minimum of size n, else from one of ``earlier_minima`` of that
    size, else from the random cluster itself.
    """
    from equiprop.calculator import EquipropCalculator

    calc, driver = EquipropCalculator(committee), EquipropCalculator(committee.members[0])
    sizes = list(settings.sizes)
    starts = make_clusters(settings.molecule, sizes, len(sizes) * settings.starts_per_size, seed=seed)
    minima, stops = [], []
    for k, start in enumerate(starts):
        minimum, problem = relax(start, calc, settings.relax, settings.guard)
        minimum.info["trajectory"] = f"relax-{seed}-{k}"
        if problem:
            stops.append(f"relax {k} ({len(start)} atoms): {problem}")
        else:
            minima.append(minimum)
    log(f"explore: {len(minima)} of {len(starts)} relaxations gave minima")
    pool = {len(a): a for a in list(earlier_minima) + minima}  # the latest minimum of each size
    md_starts = [pool.get(len(s), s) for s in starts[: len(sizes)]]
    frames = []
    for t, temperature in enumerate(settings.temperatures):
        md = MDSettings(**{**settings.md.__dict__, "temperature": float(temperature)})
        labels = [f"md-{seed}-{int(temperature)}K-{n}mol" for n in sizes]
        runs = run_replicas(md_starts, driver, md, seed=seed * 100 + t, guard=settings.guard,
                            max_forces_std=settings.max_forces_std, labels=labels,
                            spread=lambda frames: committee.predict(frames)["forces_std"])
        frames += [f for run in runs for f in run.frames]
        stops += [f"{name}: stopped {run.stopped}" for name, run in zip(labels, runs) if run.stopped]
        log(f"explore: {temperature:.0f} K, {sum(len(r.frames) for r in runs)} frames, "
            f"{sum(r.stopped is not None for r in runs)} of {len(runs)} trajectories stopped early")
    return Exploration(minima + frames, minima, stops)


def score(committee, frames: list[Atoms], batch_size: int = 32) -> tuple[np.ndarray, dict]:
    """Largest per-atom force spread of each frame ``[n_frames]`` (eV/Angstrom) and the committee's predictions."""
    out = committee.predict(frames, batch_size=batch_size)
    return np.array([float(s.max()) for s in out["forces_std"]]), out
