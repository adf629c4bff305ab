"""Equivariant convolution: neighbour features times spherical harmonics, radially weighted."""

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, coupling_paths, dense_couplings, n_components
from equiprop.nn.mlp import mlp
from equiprop.nn.scatter import scatter_sum


class SO3Convolution(nn.Module):
    """``y_i = 1/avg_neighbors * sum_j sum_paths w_path(r_ij) * CG(x_j, Y(r_ij))``.

    A channel-wise (``uvu``) tensor product of the sender's features with the
    spherical harmonics of the edge direction: one weight per channel and
    coupling path ``l1 x l2 -> l3`` on every edge, from a radial MLP scaled by
    the smooth cutoff (as in NequIP and MACE).

    Computed with three matrix products instead of one small operation per
    path: the harmonics times the Clebsch-Gordan table give each edge a
    ``[M1, C]`` matrix (C: the output components of all paths); one batched
    matmul couples it with the sender's ``[features, M1]`` features; after the
    per-path weights, the path outputs are summed per atom and then into the
    output components by a fixed ``[C, M3]`` matrix.

    Shapes: ``x [n_atoms, features, (lmax + 1)^2]``, ``sh [n_edges, (lmax + 1)^2]``,
    ``rbf [n_edges, n_rbf]``, ``fcut [n_edges]``, ``edge_index [2, n_edges]``
    -> ``[n_atoms, features, (lmax + 1)^2]``.
    """

    def __init__(self, lmax: int, features: int, n_rbf: int, radial_hidden: int = 64, avg_neighbors: float = 8.0):
        super().__init__()
        self.lmax, self.features = check_lmax(lmax), features
        self.paths = coupling_paths(lmax, lmax, lmax)
        self.radial = mlp([n_rbf, radial_hidden, len(self.paths) * features])
        self.norm = 1.0 / avg_neighbors
        cg = dense_couplings(self.paths, lmax, lmax, lmax)  # [P, M1, M2, M3]
        columns = [(k, m3) for k, p in enumerate(self.paths) for m3 in range(p.l3**2, (p.l3 + 1) ** 2)]
        table = torch.stack([cg[k, :, :, m3] for k, m3 in columns], dim=-1)  # [M1, M2, C]
        summation = torch.zeros(len(columns), n_components(lmax), dtype=torch.float64)
        summation[torch.arange(len(columns)), [m3 for _, m3 in columns]] = 1.0
        dtype = torch.get_default_dtype()
        self.register_buffer("sh_table", table.permute(1, 0, 2).reshape(n_components(lmax), -1).to(dtype))  # [M2, M1*C]
        self.register_buffer("column_path", torch.tensor([k for k, _ in columns]), persistent=False)  # [C]
        self.register_buffer("summation", summation.to(dtype))  # [C, M3]

    def forward(self, x, sh, rbf, fcut, edge_index) -> torch.Tensor:
        i, j = edge_index
        n_edges, n_columns = sh.shape[0], self.summation.shape[0]
        weights = (self.radial(rbf) * fcut[:, None]).view(n_edges, self.features, len(self.paths))  # [E, F, P]
        coupling = (sh @ self.sh_table).view(n_edges, -1, n_columns)  # [E, M1, C]
        messages = torch.bmm(x[j], coupling) * weights[:, :, self.column_path]  # [E, F, C]
        summed = scatter_sum(messages, i, x.shape[0])  # [n_atoms, F, C]
        return (summed @ self.summation) * self.norm  # [n_atoms, F, M3]
