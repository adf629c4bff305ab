"""Neighbour lists within a cutoff, open or periodic, computed by vesin."""

import numpy as np
import vesin


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs (i, j) with |r_j - r_i + S @ cell| < cutoff, i != j or S != 0, in pairs.

    Edge ``e + n_edges / 2`` is edge ``e`` reversed, ``(j, i, -S)``: vesin's
    half list (each pair once, in one direction) followed by its reverses, so
    models can compute functions of the distance once per pair, and no pair
    can appear in one direction only.

    Args:
        positions: ``[n_atoms, 3]``, Angstrom.
        cell: ``[3, 3]``, rows are cell vectors (ignored along open directions).
        pbc: ``[3]`` booleans.
        cutoff: Angstrom.

    Returns:
        receivers ``[n_edges]``, senders ``[n_edges]``, integer cell shifts
        ``[n_edges, 3]`` and distances ``[n_edges]``.
    """
    if len(positions) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros((0, 3), dtype=np.int64), np.zeros(0)
    box = np.where(np.asarray(pbc)[:, None], cell, 0.0)
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    i, j, shifts, distances = calculator.compute(
        np.ascontiguousarray(positions, dtype=np.float64), box, [bool(p) for p in pbc], "ijSd"
    )
    i, j, shifts = i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)
    return np.concatenate([i, j]), np.concatenate([j, i]), np.concatenate([shifts, -shifts]), np.tile(distances, 2)
