"""One SO3Net interaction: convolution, body-order product, gate, linear mixing."""

import torch
from e3nn import o3
from torch import nn

from equiprop.nn.gate import GatedNonlinearity
from equiprop.nn.product import BodyOrderProduct
from equiprop.nn.so3conv import SO3Convolution


class SO3Interaction(nn.Module):
    """Update ``dx`` for node features ``x`` (the model adds it: ``x + dx``).

    ``dx = conv(x)``; ``dx = dx + TP(dx, Linear(dx))`` (body order);
    ``dx = Linear(Gate(Linear(dx)))``. Shapes: ``x [n_atoms, irreps.dim]``,
    ``sh [n_edges, irreps_sh.dim]``, ``rbf [n_edges, n_rbf]``, ``fcut [n_edges]``
    -> ``[n_atoms, irreps.dim]``.
    """

    def __init__(self, irreps, irreps_sh, n_rbf: int, radial_hidden: int, avg_neighbors: float):
        super().__init__()
        self.irreps_in = self.irreps_out = o3.Irreps(irreps)
        self.conv = SO3Convolution(irreps, irreps_sh, irreps, n_rbf, radial_hidden, avg_neighbors)
        self.product = BodyOrderProduct(irreps)
        self.gate = GatedNonlinearity(irreps, irreps)
        self.mix = o3.Linear(irreps, irreps)

    def forward(self, x, sh, rbf, fcut, edge_index) -> torch.Tensor:
        dx = self.conv(x, sh, rbf, fcut, edge_index)  # [n_atoms, irreps.dim]
        dx = dx + self.product(dx)
        return self.mix(self.gate(dx))
