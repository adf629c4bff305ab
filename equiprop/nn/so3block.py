"""One SO3Net interaction: convolution, body-order product, gate, linear mixing."""

import torch
from torch import nn

from equiprop.nn.gate import GatedNonlinearity
from equiprop.nn.product import BodyOrderProduct
from equiprop.nn.so3conv import SO3Convolution
from equiprop.nn.so3linear import SO3Linear


class SO3Interaction(nn.Module):
    """Update ``dx`` for node features ``x`` (the model adds it: ``x + dx``).

    ``dx = conv(x)``; ``dx = dx + TP(dx, Linear(dx))`` (body order);
    ``dx = Linear(Gate(Linear(dx)))``. Shapes: ``x [n_atoms, (lmax + 1)^2, F]``,
    ``sh [n_edges, (lmax + 1)^2]``, ``rbf [n_edges, n_rbf]``, ``fcut [n_edges]``
    -> ``[n_atoms, (lmax + 1)^2, F]``.
    """

    def __init__(self, lmax: int, features: int, n_rbf: int, radial_hidden: int, avg_neighbors: float):
        super().__init__()
        self.conv = SO3Convolution(lmax, features, n_rbf, radial_hidden, avg_neighbors)
        self.product = BodyOrderProduct(lmax, features)
        self.pre_gate = SO3Linear(lmax, features, features)
        self.gate = GatedNonlinearity(lmax, features)
        self.mix = SO3Linear(lmax, features, features)

    def forward(self, x, sh, rbf, fcut, edge_index) -> torch.Tensor:
        dx = self.conv(x, sh, rbf, fcut, edge_index)  # [n_atoms, M, F]
        dx = dx + self.product(dx)
        return self.mix(self.gate(self.pre_gate(dx)))
