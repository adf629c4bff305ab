"""Target normalisation fitted on training data: per-element reference energies, and an energy per unit
of positive and of negative total charge (docs/design.md "Charge reference energies")."""

from typing import Sequence

import numpy as np
from ase import Atoms

from equiprop.data.typemap import TypeMap
from equiprop.keys import TOTAL_CHARGE_KEY


def element_counts(frames: Sequence[Atoms], type_map: TypeMap) -> np.ndarray:
    """How many atoms of each type every frame has, ``[n_structures, n_types]``."""
    return np.stack([np.bincount(type_map.types(a.numbers, k), minlength=len(type_map)) for k, a in enumerate(frames)])


def total_charges(frames: Sequence[Atoms]) -> np.ndarray:
    """Every frame's total charge ``[n_structures]`` (e; ``info["charge"]``, 0 when absent)."""
    return np.array([float(a.info.get(TOTAL_CHARGE_KEY, 0.0)) for a in frames])


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


def charge_columns(total_charges: np.ndarray) -> np.ndarray:
    """The charge regressors ``[n_structures, 2]``: the positive and the negative part of each total charge (e)."""
    charges = np.asarray(total_charges, dtype=np.float64)
    return np.stack([np.maximum(charges, 0.0), np.maximum(-charges, 0.0)], axis=1)


def fit_references(counts: np.ndarray, total_charges: np.ndarray, energies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(element energies [n_types], charge energies [2])`` with ``E_k ~ counts[k] @ e + charge_columns(Q)[k] @ c``.

    In two stages, so that the gauge is fixed: the element energies by :func:`fit_element_energies` on
    the neutral frames (on all frames when none is neutral), then each sign's energy per unit charge by
    least squares on the residuals of the frames of that sign. One stage would not do: for water ions
    the charge is a combination of the counts (n_H - 2 n_O = Q), so a joint fit is collinear and its
    minimum-norm solution moves hundreds of eV between the elements and the charges. A sign with no
    frames gets 0.
    """
    counts, energies = np.asarray(counts, dtype=np.float64), np.asarray(energies, dtype=np.float64)
    columns = charge_columns(total_charges)
    neutral = ~columns.any(axis=1)
    fitted = neutral if neutral.any() else np.ones(len(energies), dtype=bool)
    elements = fit_element_energies(counts[fitted], energies[fitted])
    residual = energies - counts @ elements
    charge_energies = np.zeros(2)
    for sign in range(2):
        x = columns[:, sign]
        if (x > 0).any():
            charge_energies[sign] = float(x @ residual / (x @ x))
    return elements, charge_energies


def atomic_energy_scale(counts: np.ndarray, energies: np.ndarray, references: np.ndarray,
                        offsets: np.ndarray | float = 0.0) -> float:
    """RMS per-atom residual of the energies after the references (and per-structure ``offsets``), in eV (1.0 if it is zero)."""
    residual = (np.asarray(energies) - counts @ references - offsets) / counts.sum(axis=1)
    scale = float(np.sqrt(np.mean(residual**2)))
    return scale if scale > 0 else 1.0
