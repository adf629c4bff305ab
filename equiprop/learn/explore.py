"""One round's exploration: minima from random starts, then Langevin MD from those minima.

Every candidate frame carries ``info["sample"]`` (``minimum`` or ``md``), its
trajectory name and, for MD, temperature and time. The committee scores them
afterwards (:func:`score`).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

from equiprop.data.io import read_structures, write_structures
from equiprop.labelling.clusters import make_clusters
from equiprop.sampling.guard import Guard
from equiprop.sampling.md import MDSettings, run_replicas
from equiprop.sampling.minima import RelaxSettings, relax


@dataclass(frozen=True)
class ExploreSettings:
    """What one round explores (sizes in molecules, temperatures in K)."""

    molecule: str = "H2O"
    sizes: tuple[int, ...] = tuple(range(2, 13))  # molecules (besides the ion)
    ion: str | None = None  # "H3O+" or "OH-" (make-clusters --ion): every start holds one; frames keep info["charge"]
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


def explore(committee, settings: ExploreSettings, seed: int, earlier_minima: list[Atoms] = (), log=print,
            cache: Path | None = None) -> Exploration:
    """Relax ``starts_per_size`` random clusters of each size, then run MD at each temperature from one per size.

    Relaxations follow the committee mean; MD follows member 0, and the whole
    committee judges each kept frame (its force spread stops a replica beyond
    ``max_forces_std``), as DP-GEN explores. MD replica of size n starts from
    this round's minimum of size n, else from one of ``earlier_minima`` of that
    size, else from the random cluster itself.

    ``cache``: a folder where each stage (the relaxations, each temperature's MD)
    leaves its frames and stops; a stage found there is read instead of run, so an
    interrupted exploration resumes after its last finished stage.
    """
    from equiprop.calculator import EquipropCalculator

    calc, driver = EquipropCalculator(committee), EquipropCalculator(committee.members[0])
    sizes = list(settings.sizes)
    starts = make_clusters(settings.molecule, sizes, len(sizes) * settings.starts_per_size, seed=seed, ion=settings.ion)
    def relax_all():
        found, problems = [], []
        for k, start in enumerate(starts):
            minimum, problem = relax(start, calc, settings.relax, settings.guard)
            minimum.info["trajectory"] = f"relax-{seed}-{k}"
            if problem:
                problems.append(f"relax {k} ({len(start)} atoms): {problem}")
            else:
                found.append(minimum)
        return found, problems

    minima, stops = _cached(cache, "relax", relax_all, log)
    stops = list(stops)
    log(f"explore: {len(minima)} of {len(starts)} relaxations gave minima")
    pool = {len(a): a for a in list(earlier_minima) + minima}  # the latest minimum of each size
    md_starts = [pool.get(len(s), s) for s in starts[: len(sizes)]]
    frames = []
    for t, temperature in enumerate(settings.temperatures):
        md = MDSettings(**{**settings.md.__dict__, "temperature": float(temperature)})
        labels = [f"md-{seed}-{int(temperature)}K-{n}mol" for n in sizes]

        def run_md(md=md, labels=labels, t=t):
            runs = run_replicas(md_starts, driver, md, seed=seed * 100 + t, guard=settings.guard,
                                max_forces_std=settings.max_forces_std, labels=labels,
                                spread=lambda frames: committee.predict(frames)["forces_std"])
            return ([f for run in runs for f in run.frames],
                    [f"{name}: stopped {run.stopped}" for name, run in zip(labels, runs) if run.stopped])

        new, stopped = _cached(cache, f"md-{int(temperature)}K", run_md, log)
        frames += new
        stops += stopped
        log(f"explore: {temperature:.0f} K, {len(new)} frames, {len(stopped)} of {len(labels)} trajectories stopped early")
    return Exploration(minima + frames, minima, stops)


def _cached(cache: Path | None, name: str, run, log) -> tuple[list[Atoms], list[str]]:
    """``run() -> (frames, stops)``, or what an earlier run left in ``cache/name.xyz`` and ``cache/name.json``."""
    if cache is None:
        return run()
    frames_path, stops_path = cache / f"{name}.xyz", cache / f"{name}.json"
    if stops_path.is_file():  # written last: the stage finished
        log(f"explore: {name} done before, read from {cache}")
        return (read_structures(frames_path) if frames_path.is_file() else []), json.loads(stops_path.read_text())
    frames, stops = run()
    cache.mkdir(parents=True, exist_ok=True)
    if frames:
        write_structures(frames_path, frames, overwrite=True)
    stops_path.write_text(json.dumps(stops))
    return frames, stops


def score(committee, frames: list[Atoms], batch_size: int = 32) -> tuple[np.ndarray, dict]:
    """Largest per-atom force spread of each frame ``[n_frames]`` (eV/Angstrom) and the committee's predictions."""
    out = committee.predict(frames, batch_size=batch_size)
    return np.array([float(s.max()) for s in out["forces_std"]]), out
