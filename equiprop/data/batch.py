"""Many structure graphs concatenated into one batch graph."""

from dataclasses import dataclass, fields, replace
from typing import Sequence

import torch

from equiprop.data.graph import AtomGraph


@dataclass(frozen=True)
class GraphBatch:
    """Disjoint union of structure graphs; edge indices are offset per structure.

    ``structure[a]`` is the structure id of atom ``a``; per-structure quantities
    are summed with it (``index_add``). With ``paired_edges`` (as :func:`collate`
    builds it), edge ``e + n_edges / 2`` is edge ``e`` reversed, so models may
    compute functions of the distance for the first half only.
    """

    positions: torch.Tensor  # [n_atoms, 3], Angstrom
    types: torch.Tensor  # [n_atoms] int64
    structure: torch.Tensor  # [n_atoms] int64, structure id in 0..n_structures-1
    edge_index: torch.Tensor  # [2, n_edges] int64, (receiver i, sender j), batch atom indices
    cell_shifts: torch.Tensor  # [n_edges, 3], integer multiples of cell vectors
    cell: torch.Tensor  # [n_structures, 3, 3], Angstrom
    n_atoms: torch.Tensor  # [n_structures] int64, atoms per structure
    total_charge: torch.Tensor  # [n_structures], e
    paired_edges: bool = False

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)}

    @property
    def n_structures(self) -> int:
        return self.n_atoms.shape[0]

    def to(self, device=None, dtype=None, non_blocking: bool = False) -> "GraphBatch":
        """Move to ``device``; floating tensors also cast to ``dtype``."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() else None, non_blocking=non_blocking)

        return replace(self, **{name: move(t) for name, t in self.tensors().items()})

    def pin_memory(self) -> "GraphBatch":
        """Page-locked copy (``DataLoader(pin_memory=True)`` calls this) for asynchronous host-to-GPU copies."""
        return replace(self, **{name: t.pin_memory() for name, t in self.tensors().items()})


def collate(graphs: Sequence[AtomGraph]) -> GraphBatch:
    """Concatenate ``graphs`` into one :class:`GraphBatch` (float64, on CPU).

    If every graph's edges come in pairs (as ``atoms_to_graph`` builds them),
    the batch lists the first halves of all graphs, then the second halves, and
    is marked ``paired_edges``.
    """
    if len(graphs) == 0:
        raise ValueError("cannot batch an empty list of graphs")
    n_atoms = torch.tensor([g.n_atoms for g in graphs], dtype=torch.int64)
    offsets = (torch.cumsum(n_atoms, 0) - n_atoms).tolist()  # [n_structures]
    edges = [g.edge_index + offset for g, offset in zip(graphs, offsets)]
    shifts = [g.cell_shifts for g in graphs]
    paired = all(g.paired_edges for g in graphs)
    if paired:  # [first halves..., second halves...]
        halves = [g.n_edges // 2 for g in graphs]
        edges = [e[:, :h] for e, h in zip(edges, halves)] + [e[:, h:] for e, h in zip(edges, halves)]
        shifts = [s[:h] for s, h in zip(shifts, halves)] + [s[h:] for s, h in zip(shifts, halves)]
    return GraphBatch(
        positions=torch.cat([g.positions for g in graphs]),
        types=torch.cat([g.types for g in graphs]),
        structure=torch.repeat_interleave(torch.arange(len(graphs)), n_atoms),
        edge_index=torch.cat(edges, dim=1),
        cell_shifts=torch.cat(shifts),
        cell=torch.stack([g.cell for g in graphs]),
        n_atoms=n_atoms,
        total_charge=torch.tensor([g.total_charge for g in graphs], dtype=torch.float64),
        paired_edges=paired,
    )
