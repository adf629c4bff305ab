"""Batches padded to fixed sizes, so a training step can be replayed from a CUDA graph.

A CUDA graph replays kernels recorded for fixed tensor shapes and addresses
(``equiprop/train/cuda_graphs.py``). Batches of molecules differ in atoms and
edges, so each batch is padded up to a *bucket*: a size on a ladder of four
steps per doubling (at most 25% padding), and one graph is recorded per bucket.

Padding adds nothing to the real structures' results:
- padding atoms (type 0, at the origin) form one extra structure, after the
  ``n_structures`` slots; unused slots are empty structures (counted as one
  atom in the divisions, so nothing divides zero by zero);
- padding edges join the first padding atom to its own periodic image one
  padding cell (``2 * cutoff`` wide) away, beyond the cutoff: the smooth
  cutoff makes their messages exactly zero, with zero gradient;
- labels are zero-padded and every error is multiplied by a mask (1 on real
  atoms and structures, 0 on padding) before the loss and the metrics.
"""

from dataclasses import dataclass, replace

import torch

from equiprop.data.batch import GraphBatch
from equiprop.keys import PER_STRUCTURE, Property

#: CUDA graphs recorded at most per run (training steps, and inference per model); batches of further padded
#: shapes run eagerly (each graph keeps its static inputs). Read at construction, so tests may change it.
MAX_GRAPHS = 16

Tensors = dict[Property, torch.Tensor]


def bucket(n: int, minimum: int = 8) -> int:
    """Smallest size ``>= n`` on the ladder ``k * 2^(e - 2)`` (k = 4..7): four steps per doubling."""
    if n <= minimum:
        return minimum
    step = 1 << max((n - 1).bit_length() - 3, 0)  # 2^(e-3) for 2^(e-1) < n <= 2^e: 4 steps from 2^(e-1) to 2^e
    return -(-n // step) * step


@dataclass(frozen=True)
class PaddedShape:
    """Fixed sizes of a padded batch: atoms (at least one padding atom), edges, structure slots (plus one for padding)."""

    atoms: int
    edges: int
    structures: int

    @classmethod
    def of(cls, batch: GraphBatch, structures: int) -> "PaddedShape":
        """The bucket of ``batch`` with ``structures`` slots (the batch size)."""
        if batch.n_structures > structures:
            raise ValueError(f"batch of {batch.n_structures} structures does not fit {structures} slots")
        edges = batch.edge_index.shape[1]
        edges = 2 * bucket(edges // 2) if batch.paired_edges else bucket(edges)  # both halves padded alike
        return cls(atoms=bucket(batch.positions.shape[0] + 1), edges=edges, structures=structures)


@dataclass(frozen=True)
class PaddedBatch:
    """A batch padded to ``shape``: graph, labels, masks (``atom_mask [atoms]``, ``structure_mask [structures + 1]``)
    and the number of real label components per target (``counts [n_targets]``, in ``labels``' order)."""

    batch: GraphBatch
    labels: Tensors
    atom_mask: torch.Tensor
    structure_mask: torch.Tensor
    counts: torch.Tensor

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor, in a fixed order (for copying into a graph's static inputs)."""
        graph = self.batch.tensors()
        return [graph[k] for k in sorted(graph)] + [self.labels[p] for p in self.labels] + [
            self.atom_mask, self.structure_mask, self.counts]

    def map(self, function) -> "PaddedBatch":
        """This batch with ``function`` applied to every tensor (e.g. a copy on another device)."""
        batch = replace(self.batch, **{k: function(t) for k, t in self.batch.tensors().items()})
        return PaddedBatch(batch, {p: function(v) for p, v in self.labels.items()}, function(self.atom_mask),
                           function(self.structure_mask), function(self.counts))

    def masked(self, errors: Tensors) -> Tensors:
        """Errors with the padding's entries set to zero."""
        out = {}
        for prop, error in errors.items():
            mask = self.structure_mask if prop in PER_STRUCTURE else self.atom_mask
            out[prop] = error * mask.view(-1, *[1] * (error.dim() - 1))
        return out


def pad_batch(batch: GraphBatch, labels: Tensors, shape: PaddedShape, cutoff: float) -> PaddedBatch:
    """``batch`` and ``labels`` padded to ``shape`` (on the batch's device and dtype); see the module docstring."""
    n, e, s = batch.positions.shape[0], batch.edge_index.shape[1], batch.n_structures
    pad_atoms, pad_edges, slots = shape.atoms - n, shape.edges - e, shape.structures
    if pad_atoms < 1 or pad_edges < 0 or s > slots:
        raise ValueError(f"batch of {n} atoms, {e} edges, {s} structures does not fit {shape}")
    floats, ints = dict(dtype=batch.positions.dtype, device=batch.positions.device), dict(dtype=torch.int64,
                                                                                           device=batch.positions.device)
    first_pad = torch.full((2, 1), n, **ints)
    shift = torch.tensor([[1.0, 0.0, 0.0]], **floats)
    if batch.paired_edges:  # [first halves, padding, second halves, padding reversed]
        half, pad_half = e // 2, pad_edges // 2
        edge_index = torch.cat([batch.edge_index[:, :half], first_pad.expand(2, pad_half),
                                batch.edge_index[:, half:], first_pad.expand(2, pad_half)], dim=1)
        cell_shifts = torch.cat([batch.cell_shifts[:half], shift.expand(pad_half, 3),
                                 batch.cell_shifts[half:], -shift.expand(pad_half, 3)])
    else:
        edge_index = torch.cat([batch.edge_index, first_pad.expand(2, pad_edges)], dim=1)
        cell_shifts = torch.cat([batch.cell_shifts, shift.expand(pad_edges, 3)])
    padding_cell = torch.eye(3, **floats) * (2.0 * cutoff)
    n_atoms = torch.cat([batch.n_atoms, torch.ones(slots - s, **ints), torch.tensor([pad_atoms], **ints)])
    padded = replace(
        batch,
        positions=torch.cat([batch.positions, torch.zeros(pad_atoms, 3, **floats)]),
        types=torch.cat([batch.types, torch.zeros(pad_atoms, **ints)]),
        structure=torch.cat([batch.structure, torch.full((pad_atoms,), slots, **ints)]),
        edge_index=edge_index,
        cell_shifts=cell_shifts,
        cell=torch.cat([batch.cell, torch.zeros(slots - s, 3, 3, **floats), padding_cell[None]]),
        n_atoms=n_atoms,
        total_charge=torch.cat([batch.total_charge, torch.zeros(slots + 1 - s, **floats)]),
    )
    padded_labels = {p: _pad_rows(v, (slots + 1 if p in PER_STRUCTURE else shape.atoms)) for p, v in labels.items()}
    atom_mask = (torch.arange(shape.atoms, device=batch.positions.device) < n).to(batch.positions.dtype)
    structure_mask = (torch.arange(slots + 1, device=batch.positions.device) < s).to(batch.positions.dtype)
    counts = torch.tensor([float(v.numel()) for v in labels.values()], **floats)
    return PaddedBatch(padded, padded_labels, atom_mask, structure_mask, counts)


def _pad_rows(values: torch.Tensor, rows: int) -> torch.Tensor:
    return torch.cat([values, values.new_zeros((rows - values.shape[0],) + values.shape[1:])])
