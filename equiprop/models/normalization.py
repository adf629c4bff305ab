"""Target normalisation fitted on training data: per-element reference energies."""

from typing import Sequence

import numpy as np
from ase import Atoms

from equiprop.data.typemap import TypeMap


def element_counts(frames: Sequence[Atoms], type_map: TypeMap) -> np.ndarray:
    """How many atoms of each type every frame has, ``[n_structures, n_types]``."""
    return np.stack([np.bincount(type_map.types(a.numbers, k), minlength=len(type_map)) for k, a in enumerate(frames)])


def fit_element_energies(counts: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """Least-squares ``E_k ~ sum_t counts[k, t] * e_t``, the minimum-norm solution ``[n_types]``.

    When compositions do not separate the elements (pure water: n_H = 2 n_O
    in every frame) only combinations such as ``2 e_H + e_O`` are determined;
    the minimum-norm solution fixes those and sets the rest to zero.
    """
    counts, energies = np.asarray(counts, dtype=np.float64), np.asarray(energies, dtype=np.float64)
    if counts.ndim != 2 or energies.shape != (counts.shape[0],):
        raise ValueError(f"need counts [n_structures, n_types] and energies [n_structures], got {counts.shape}, {energies.shape}")
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return solution


def atomic_energy_scale(counts: np.ndarray, energies: np.ndarray, references: np.ndarray) -> float:
    """RMS per-atom residual of the energies after the references, in eV (1.0 if it is zero)."""
    residual = (np.asarray(energies) - counts @ references) / counts.sum(axis=1)
    scale = float(np.sqrt(np.mean(residual**2)))
    return scale if scale > 0 else 1.0
