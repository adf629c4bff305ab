"""One SO3Net interaction: convolution, body-order product, gate, linear mixing."""

import torch
from torch import nn

from equiprop.nn.gate import GatedNonlinearity
from equiprop.nn.irreps import n_components
from equiprop.nn.product import BodyOrderProduct
from equiprop.nn.so3conv import SO3Convolution
from equiprop.nn.so3linear import SO3Linear


class SO3Interaction(nn.Module):
    """Update ``dx`` for node features ``x`` (the model adds it: ``x + dx``).

    ``dx = conv(x)``; ``dx = dx + TP(dx, Linear(dx))`` (body order);
    ``dx = Linear(Gate(Linear(dx)))``. Shapes: ``x [n_atoms, (lmax + 1)^2, F]``
    (or ``[n_atoms, 1, F]``, scalars only), ``sh [n_edges, (sh_lmax + 1)^2]``,
    ``rbf [n_edges, n_rbf]``, ``fcut [n_edges]`` -> ``[n_atoms, (lmax_out + 1)^2, F]``
    (``paired``: see :class:`SO3Convolution`).
    ``lmax_out < lmax`` (the last interaction) computes only the degrees the
    readouts use, after a full convolution: the result equals the first
    ``(lmax_out + 1)^2`` components of the full block's.
    """

    def __init__(self, lmax: int, features: int, n_rbf: int, radial_hidden: int, avg_neighbors: float,
                 lmax_out: int | None = None, sh_lmax: int | None = None):
        super().__init__()
        self.conv = SO3Convolution(lmax, features, n_rbf, radial_hidden, avg_neighbors, sh_lmax)
        self.product = BodyOrderProduct(lmax, features, lmax_out)
        lmax_out = self.product.lmax_out
        self.pre_gate = SO3Linear(lmax_out, features, features)
        self.gate = GatedNonlinearity(lmax_out, features)
        self.mix = SO3Linear(lmax_out, features, features)

    def forward(self, x, sh, rbf, fcut, edge_index, paired: bool = False) -> torch.Tensor:
        dx = self.conv(x, sh, rbf, fcut, edge_index, paired)  # [n_atoms, M, F]
        dx = dx[:, : n_components(self.product.lmax_out)] + self.product(dx)  # [n_atoms, M_out, F]
        return self.mix(self.gate(self.pre_gate(dx)))
