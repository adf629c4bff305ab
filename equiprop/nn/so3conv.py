"""Equivariant convolution: neighbour irreps times spherical harmonics, radially weighted."""

import torch
from e3nn import o3
from torch import nn

from equiprop.nn.irreps import check_uniform, coupling_paths
from equiprop.nn.mlp import mlp
from equiprop.nn.scatter import scatter_sum


class SO3Convolution(nn.Module):
    """``y_i = 1/avg_neighbors * sum_j TP(x_j, Y(r_ij); w(|r_ij|))``.

    A channel-wise (``uvu``) tensor product of the sender's features with the
    spherical harmonics of the edge direction, one weight per channel and path
    from a radial MLP, scaled by the smooth cutoff (as in NequIP and MACE).

    Args:
        irreps_in: node features, e.g. ``32x0e + 32x1o + 32x2e``.
        irreps_sh: spherical harmonics of the edge directions.
        irreps_out: output irreps; every output must be reachable by some path.
        n_rbf: size of the radial basis.
        radial_hidden: hidden width of the radial MLP.
        avg_neighbors: constant normaliser of the neighbour sum (no dependence on
            the neighbour count, so energies stay continuous at the cutoff).

    Shapes: ``x [n_atoms, irreps_in.dim]``, ``sh [n_edges, irreps_sh.dim]``,
    ``rbf [n_edges, n_rbf]``, ``fcut [n_edges]``, ``edge_index [2, n_edges]``
    -> ``[n_atoms, irreps_out.dim]``.
    """

    def __init__(self, irreps_in, irreps_sh, irreps_out, n_rbf: int, radial_hidden: int = 64, avg_neighbors: float = 8.0):
        super().__init__()
        self.irreps_in, self.irreps_sh = o3.Irreps(irreps_in), o3.Irreps(irreps_sh)
        self.irreps_out = o3.Irreps(irreps_out)
        if check_uniform(self.irreps_in, "SO3Convolution") != check_uniform(self.irreps_out, "SO3Convolution"):
            raise ValueError(f"SO3Convolution: irreps_in {self.irreps_in} and irreps_out {self.irreps_out} differ in channels")
        paths = coupling_paths(self.irreps_in, self.irreps_sh, self.irreps_out)
        unreachable = set(range(len(self.irreps_out))) - {p[2] for p in paths}
        if unreachable:
            raise ValueError(f"SO3Convolution: outputs {[str(self.irreps_out[k]) for k in unreachable]} unreachable from {self.irreps_in} x {self.irreps_sh}")
        self.tp = o3.TensorProduct(
            self.irreps_in, self.irreps_sh, self.irreps_out,
            [(i1, i2, i_out, "uvu", True) for i1, i2, i_out in paths],
            shared_weights=False, internal_weights=False,
        )
        self.radial = mlp([n_rbf, radial_hidden, self.tp.weight_numel])
        self.norm = 1.0 / avg_neighbors

    def forward(self, x, sh, rbf, fcut, edge_index) -> torch.Tensor:
        i, j = edge_index
        weights = self.radial(rbf) * fcut[:, None]  # [n_edges, weight_numel]
        messages = self.tp(x[j], sh, weights)  # [n_edges, irreps_out.dim]
        return scatter_sum(messages, i, x.shape[0]) * self.norm
