"""Neighbour lists within a cutoff, open or periodic, computed by vesin."""

import numpy as np
import vesin


def neighbor_list(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs (i, j) with |r_j - r_i + S @ cell| < cutoff, i != j or S != 0.

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
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, shifts, distances = calculator.compute(
        np.ascontiguousarray(positions, dtype=np.float64), box, [bool(p) for p in pbc], "ijSd"
    )
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64), distances


def pair_order(
    i: np.ndarray, j: np.ndarray, shifts: np.ndarray, distances: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same edges with each one's reverse ``n_edges / 2`` places later.

    The first half holds one direction of every pair (``i < j``, or ``i == j``
    with a positive cell shift), the second half the reverses ``(j, i, -S)`` in
    the same order, so models can compute edge functions of the distance once
    per pair. Built from the first direction: a pair that vesin's rounding
    listed in one direction only, at exactly the cutoff (where the cutoff
    function and its slope are zero), is completed rather than dropped.
    """
    forward = (i < j) | ((i == j) & _lexicographically_positive(shifts))
    fi, fj, fs, fd = i[forward], j[forward], shifts[forward], distances[forward]
    back = ~forward & ~_has_partner(i, j, shifts, fi, fj, fs)  # listed only in the second direction
    fi, fj = np.concatenate([fi, j[back]]), np.concatenate([fj, i[back]])
    fs, fd = np.concatenate([fs, -shifts[back]]), np.concatenate([fd, distances[back]])
    return np.concatenate([fi, fj]), np.concatenate([fj, fi]), np.concatenate([fs, -fs]), np.concatenate([fd, fd])


def _lexicographically_positive(shifts: np.ndarray) -> np.ndarray:
    first = np.argmax(shifts != 0, axis=1)  # first non-zero component (0 for zero shifts)
    return shifts[np.arange(len(shifts)), first] > 0


def _has_partner(i, j, shifts, fi, fj, fs) -> np.ndarray:
    """For every edge (i, j, S): whether (j, i, -S) is among the forward edges (fi, fj, fs)."""
    n = int(max(i.max(initial=0), j.max(initial=0))) + 1
    reach = int(np.abs(shifts).max(initial=0))  # shifts and their negatives lie in [-reach, reach]
    span = 2 * reach + 1

    def key(a, b, s):
        code = a.astype(np.int64) * n + b
        for axis in range(3):
            code = code * span + (s[:, axis] + reach)
        return code

    return np.isin(key(j, i, -shifts), key(fi, fj, fs))
