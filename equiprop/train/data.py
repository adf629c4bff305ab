"""Labelled graphs for training and evaluation, built once per structure."""

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from ase import Atoms

from equiprop.data.batch import GraphBatch, collate
from equiprop.data.graph import AtomGraph, frames_to_graphs
from equiprop.data.labels import LabelKeys, read_labels
from equiprop.data.typemap import TypeMap
from equiprop.keys import PER_STRUCTURE, Property

Labels = dict[Property, torch.Tensor]


@dataclass(frozen=True)
class LabelledSet:
    """Graphs and reference labels of a list of frames (index k = frame k)."""

    graphs: list[AtomGraph]
    labels: dict[Property, list[torch.Tensor]]  # per frame, float64
    frames: list[Atoms]
    source: str | None

    def __len__(self) -> int:
        return len(self.graphs)

    def subset(self, indices: Sequence[int]) -> "LabelledSet":
        indices = [int(k) for k in indices]
        return LabelledSet(
            graphs=[self.graphs[k] for k in indices],
            labels={p: [v[k] for k in indices] for p, v in self.labels.items()},
            frames=[self.frames[k] for k in indices],
            source=self.source,
        )


def labelled_set(frames, targets, keys: LabelKeys, type_map: TypeMap, cutoff: float, source=None, indices=None) -> LabelledSet:
    """Check and convert ``frames``; InputError names the frame (``indices[k]`` in ``source``) and key at fault."""
    frames = list(frames)
    graphs = frames_to_graphs(frames, type_map, cutoff, source, indices)
    arrays = read_labels(frames, list(targets), keys, source, indices)
    labels = {p: [torch.from_numpy(a) for a in values] for p, values in arrays.items()}
    return LabelledSet(graphs, labels, frames, source)


def make_batch(data: LabelledSet, indices, device=None, dtype=None) -> tuple[GraphBatch, Labels]:
    """Batch of ``indices``: graphs and labels (energy/dipole per structure, charges/forces per atom)."""
    batch = collate([data.graphs[k] for k in indices]).to(device, dtype)
    labels = {}
    for prop, values in data.labels.items():
        picked = [values[k] for k in indices]
        stacked = torch.stack(picked) if prop in PER_STRUCTURE else torch.cat(picked)
        labels[prop] = stacked.to(device=device, dtype=dtype)
    return batch, labels


def batch_order(n: int, batch_size: int, shuffle: bool, seed: int = 0, epoch: int = 0) -> list[np.ndarray]:
    """Index batches; shuffled ones depend only on (seed, epoch), so a resumed run sees the same order."""
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    return [order[k : k + batch_size] for k in range(0, n, batch_size)]
