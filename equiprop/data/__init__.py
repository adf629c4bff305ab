"""Structures to graphs, batching and label reading."""

from equiprop.data.batch import GraphBatch, collate
from equiprop.data.graph import AtomGraph, atoms_to_graph, frames_to_graphs
from equiprop.data.labels import LabelKeys, read_label, read_labels
from equiprop.data.typemap import TypeMap

__all__ = [
    "AtomGraph",
    "GraphBatch",
    "LabelKeys",
    "TypeMap",
    "atoms_to_graph",
    "collate",
    "frames_to_graphs",
    "read_label",
    "read_labels",
]
