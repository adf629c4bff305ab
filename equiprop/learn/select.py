"""Which explored structures to label: the most uncertain, within bounds, no near-duplicates.

Score of a structure: the largest per-atom committee force spread
(``forces_std``, eV/Angstrom), as DP-GEN's model deviation. Structures are
taken by decreasing score between ``low`` (as certain as the committee is on
its own test split: a label teaches little) and ``high`` (so far out that the
DFT describes a geometry no simulation of the real system visits), skipping
near-duplicates of each other and of data already labelled, and at most
``per_trajectory`` from one trajectory, so one run-away does not take the
whole budget.
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


def select(candidates: list[Atoms], scores: np.ndarray, rule: Selection, known: list[Atoms] = ()) -> list[int]:
    """Indices into ``candidates`` in order of selection (highest score first)."""
    by_size: dict[int, list[np.ndarray]] = {}
    for atoms in known:
        by_size.setdefault(len(atoms), []).append(fingerprint(atoms))
    chosen, per_trajectory = [], {}
    for k in np.argsort(-np.asarray(scores), kind="stable"):
        if len(chosen) == rule.n:
            break
        if not rule.low <= scores[k] <= rule.high:
            continue
        trajectory = candidates[k].info.get("trajectory", f"#{k}")
        if per_trajectory.get(trajectory, 0) >= rule.per_trajectory:
            continue
        mark = fingerprint(candidates[k])
        others = by_size.setdefault(len(candidates[k]), [])
        if any(rms_difference(mark, other) < rule.duplicate_rms for other in others):
            continue
        others.append(mark)
        per_trajectory[trajectory] = per_trajectory.get(trajectory, 0) + 1
        chosen.append(int(k))
    return chosen
