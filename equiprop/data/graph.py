"""One structure as a graph: the frozen dataclass between ASE and tensors."""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from ase import Atoms

from equiprop.data.neighbors import neighbor_list
from equiprop.data.typemap import TypeMap
from equiprop.errors import InputError, where
from equiprop.keys import TOTAL_CHARGE_KEY

#: Two atoms closer than this (Angstrom) are taken as sitting at the same position.
MIN_DISTANCE = 1e-4


@dataclass(frozen=True)
class AtomGraph:
    """A structure's atoms and the edges between neighbours within the cutoff.

    Edge ``e`` connects receiver ``i = edge_index[0, e]`` with sender
    ``j = edge_index[1, e]``; its vector ``r_ij = r_j - r_i + cell_shifts[e] @ cell``
    is computed in the model's forward pass so that forces come from autograd.
    Edges come in pairs: edge ``e + n_edges / 2`` is edge ``e`` reversed
    (:func:`equiprop.data.neighbors.neighbor_list`).
    """

    positions: torch.Tensor  # [n_atoms, 3] float64, Angstrom
    types: torch.Tensor  # [n_atoms] int64, indices into the type map
    edge_index: torch.Tensor  # [2, n_edges] int64, (receiver i, sender j)
    cell_shifts: torch.Tensor  # [n_edges, 3] float64, integer multiples of cell vectors
    cell: torch.Tensor  # [3, 3] float64, rows are cell vectors (zeros when open)
    total_charge: float  # e

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[0]

    @property
    def n_edges(self) -> int:
        return self.edge_index.shape[1]

    @cached_property
    def paired_edges(self) -> bool:
        """Whether edge ``e + n_edges / 2`` is edge ``e`` reversed, for every e (checked once per graph)."""
        half, e, s = self.n_edges // 2, self.edge_index, self.cell_shifts
        return self.n_edges % 2 == 0 and torch.equal(e[:, half:], e[:, :half].flip(0)) and torch.equal(s[half:], -s[:half])


def atoms_to_graph(
    atoms: Atoms, type_map: TypeMap, cutoff: float, index: int = 0, source: str | None = None
) -> AtomGraph:
    """Build the graph of ``atoms`` within ``cutoff`` (Angstrom), checking the input.

    ``index`` and ``source`` (a file name) only serve error messages. Raises
    InputError for an unknown element, non-finite positions or cell, a periodic
    direction without a cell vector, two atoms at the same position, or a
    non-numeric total charge (``atoms.info["charge"]``).
    """
    at = where(index, source)
    if not isinstance(atoms, Atoms):
        raise InputError(f"{at}: expected ase.Atoms, got {type(atoms).__name__}")
    positions = np.asarray(atoms.positions, dtype=np.float64)
    types = type_map.types(atoms.numbers, index, source)
    _check_finite(positions, at)
    cell, pbc = np.asarray(atoms.cell.array, dtype=np.float64), np.asarray(atoms.pbc, dtype=bool)
    _check_cell(cell, pbc, at)
    i, j, shifts, distances = neighbor_list(positions, cell, pbc, cutoff)
    _check_no_overlap(i, j, distances, at)
    return AtomGraph(
        positions=torch.from_numpy(positions.copy()),
        types=torch.from_numpy(types),
        edge_index=torch.from_numpy(np.stack([i, j])),
        cell_shifts=torch.from_numpy(shifts.astype(np.float64)),
        cell=torch.from_numpy(np.where(pbc[:, None], cell, 0.0)),
        total_charge=_total_charge(atoms, at),
    )


def _check_finite(positions: np.ndarray, at: str) -> None:
    bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
    if bad.size:
        raise InputError(f"{at}: atom {bad[0]} has a non-finite position {positions[bad[0]].tolist()}")


def _check_cell(cell: np.ndarray, pbc: np.ndarray, at: str) -> None:
    if not np.isfinite(cell).all():
        raise InputError(f"{at}: the cell has non-finite entries")
    for axis in np.flatnonzero(pbc):
        if np.linalg.norm(cell[axis]) == 0.0:
            raise InputError(f"{at}: periodic along cell vector {axis}, but that vector is zero")


def _check_no_overlap(i: np.ndarray, j: np.ndarray, distances: np.ndarray, at: str) -> None:
    close = np.flatnonzero(distances < MIN_DISTANCE)
    if close.size:
        e = close[0]
        raise InputError(
            f"{at}: atoms {i[e]} and {j[e]} are at the same position "
            f"(distance {distances[e]:.2e} Angstrom, counting periodic images)"
        )


def _total_charge(atoms: Atoms, at: str) -> float:
    value = atoms.info.get(TOTAL_CHARGE_KEY, 0.0)
    try:
        charge = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{at}: info[{TOTAL_CHARGE_KEY!r}] = {value!r} is not a number") from None
    if not np.isfinite(charge):
        raise InputError(f"{at}: info[{TOTAL_CHARGE_KEY!r}] = {value!r} is not finite")
    return charge


def frames_to_graphs(frames, type_map: TypeMap, cutoff: float, source: str | None = None, indices=None) -> list[AtomGraph]:
    """Graphs of all ``frames``; InputError if there are none or one is bad.

    ``indices``: each frame's index in ``source`` for error messages (default 0, 1, ...).
    """
    frames = list(frames) if not isinstance(frames, Atoms) else [frames]
    if not frames:
        raise InputError(f"no structures given{f' (file {source} is empty)' if source else ''}")
    names = range(len(frames)) if indices is None else [int(k) for k in indices]
    return [atoms_to_graph(atoms, type_map, cutoff, k, source) for k, atoms in zip(names, frames)]
