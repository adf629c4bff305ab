"""Which explored structures to label: the most uncertain, within bounds, no near-duplicates.

Score of a structure: the largest per-atom committee force spread
(``forces_std``, eV/Angstrom), as DP-GEN's model deviation. Structures are
taken by decreasing score between ``low`` (as certain as the committee is on
its own test split: a label teaches little) and ``high`` (so far out that the
DFT describes a geometry no simulation of the real system visits), skipping
near-duplicates of each other and of data already labelled, and at most
``per_trajectory`` from one trajectory, so one run-away does not take the
whole budget, and at most ``per_size`` of one size (atom count): the largest
per-atom spread grows with the number of atoms, so without a cap the budget
goes to the largest clusters (rounds 0 and 1 of the shipped set took no
dimers or trimers). Minima (``info["sample"] == "minimum"``) get ``minima`` places
regardless of ``low``, spread over sizes (each size's most uncertain minimum
before any size's second): they are the structures users ask about (isomer
energies), and a committee that agrees there can still be wrong there (the
shipped model's error on cluster minima is 3-4x its error on random clusters).
"""

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.spatial.distance import pdist


def fingerprint(atoms: Atoms) -> np.ndarray:
    """Sorted interatomic distances ``[n_atoms (n_atoms - 1) / 2]``: blind to rotation, translation, permutation."""
    return np.sort(pdist(atoms.positions))


def rms_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2))) if len(a) == len(b) else float("inf")


@dataclass(frozen=True)
class Selection:
    """``n`` structures with scores in ``[low, high]`` eV/Angstrom; duplicates within ``duplicate_rms`` Angstrom."""

    n: int
    low: float
    high: float
    duplicate_rms: float = 0.02
    per_trajectory: int = 3
    minima: int = 0  # places for minima regardless of low (highest score first)
    per_size: int | None = None  # at most this many of one atom count (None: no cap)


def select(candidates: list[Atoms], scores: np.ndarray, rule: Selection, known: list[Atoms] = ()) -> list[int]:
    """Indices into ``candidates`` in order of selection: minima's places first, then the highest scores."""
    taken = _Taken(rule, known)
    order = np.argsort(-np.asarray(scores), kind="stable")
    for k in _minima_spread_over_sizes(candidates, order):
        if len(taken.chosen) == min(rule.minima, rule.n):
            break
        if scores[k] <= rule.high:
            taken.offer(k, candidates[k])
    for k in order:
        if len(taken.chosen) == rule.n:
            break
        if rule.low <= scores[k] <= rule.high and k not in taken.chosen:
            taken.offer(k, candidates[k])
    return taken.chosen


def _minima_spread_over_sizes(candidates: list[Atoms], order: np.ndarray) -> list[int]:
    """Minima in passes: each size's highest-scoring minimum first (by score), then each size's second, ...

    Isomer energies are compared within one size, and the score grows with size,
    so by score alone the minima places would all go to the largest clusters.
    """
    by_size: dict[int, list[int]] = {}
    for k in order:
        if candidates[k].info.get("sample") == "minimum":
            by_size.setdefault(len(candidates[k]), []).append(int(k))
    passes = max((len(group) for group in by_size.values()), default=0)
    rank = {int(k): i for i, k in enumerate(order)}
    spread = []
    for p in range(passes):
        spread += sorted((group[p] for group in by_size.values() if p < len(group)), key=rank.get)
    return spread


class _Taken:
    """The frames chosen so far, with the duplicate and per-trajectory bookkeeping."""

    def __init__(self, rule: Selection, known):
        self.rule, self.chosen, self.per_trajectory, self.per_size = rule, [], {}, {}
        self.by_size: dict[int, list[np.ndarray]] = {}
        for atoms in known:
            self.by_size.setdefault(len(atoms), []).append(fingerprint(atoms))

    def offer(self, k: int, atoms: Atoms) -> None:
        trajectory = atoms.info.get("trajectory", f"#{k}")
        if self.per_trajectory.get(trajectory, 0) >= self.rule.per_trajectory:
            return
        if self.rule.per_size is not None and self.per_size.get(len(atoms), 0) >= self.rule.per_size:
            return
        mark, others = fingerprint(atoms), self.by_size.setdefault(len(atoms), [])
        if any(rms_difference(mark, other) < self.rule.duplicate_rms for other in others):
            return
        others.append(mark)
        self.per_trajectory[trajectory] = self.per_trajectory.get(trajectory, 0) + 1
        self.per_size[len(atoms)] = self.per_size.get(len(atoms), 0) + 1
        self.chosen.append(int(k))
