"""Equivariant convolution: neighbour features times spherical harmonics, radially weighted."""

import math

import torch
from e3nn.nn import FullyConnectedNet
from torch import nn

from equiprop.nn.irreps import check_lmax, check_sh_lmax, coupling_paths, degree_of_component, dense_couplings, n_components
from equiprop.nn.scatter import compiling_for_cpu, gather_rows, scatter_sum


def couple(coupling: torch.Tensor, sender: torch.Tensor) -> torch.Tensor:
    """Per-edge ``coupling [E, M3, M1] @ sender [E, M1, F] -> [E, M3, F]``.

    Eagerly one ``bmm``. Under ``torch.compile`` on a CPU a broadcast product
    summed over M1, which Inductor fuses with the gather and channel weights
    before it and the forces' backward passes after it (no ``[E, M3, M1, F]``
    tensor is stored); ``bmm`` stays a separate library call per pass there.
    """
    if compiling_for_cpu(sender):
        return (coupling[:, :, :, None] * sender[:, None, :, :]).sum(2)
    return torch.bmm(coupling, sender)


class SO3Convolution(nn.Module):
    """``y_i = 1/sqrt(avg_neighbors) * sum_j c(r_ij) * sum_p w_p(r_ij) CG_p(x_j, Y(r_ij))``.

    A channel-wise tensor product of the sender's features with the spherical
    harmonics of the edge direction, summed over all coupling paths
    ``p = (l1, l2, l3)`` (natural parity). The radial MLP (scaled by the smooth
    cutoff) gives every edge one weight per path ``w_p``, shared by all
    channels, and one per channel ``c_f``, shared by all paths: a separable form
    of NequIP/MACE's per-path, per-channel weights. The path weights fold into
    one ``[(lmax + 1)^2, (lmax + 1)^2]`` coupling matrix per edge, so every edge
    tensor stays ``[n_edges, (lmax + 1)^2, features]`` (docs/design.md).

    ``sh_lmax`` (default ``lmax``) is the highest degree of the spherical
    harmonics; above ``lmax`` it adds couplings such as ``1 x 2 -> 1`` (a vector
    turned by the edge's quadrupole) without adding feature components, so the
    edge tensors keep their size (docs/design.md, "filters above the features").

    Shapes: ``x [n_atoms, (lmax + 1)^2, features]`` (or ``[n_atoms, 1, features]``: scalars
    only, as in the first interaction), ``sh [n_edges, (sh_lmax + 1)^2]``,
    ``rbf [n_edges, n_rbf]``, ``fcut [n_edges]``, ``edge_index [2, n_edges]``
    -> ``[n_atoms, (lmax + 1)^2, features]``. With ``paired`` (edge ``e + E/2`` is edge
    ``e`` reversed), ``sh``, ``rbf`` and ``fcut`` are given for the first ``E/2``
    edges only, and the radial MLP runs once per pair.
    """

    def __init__(self, lmax: int, features: int, n_rbf: int, radial_hidden: int = 64, avg_neighbors: float = 8.0,
                 sh_lmax: int | None = None):
        super().__init__()
        self.lmax, self.features = check_lmax(lmax), features
        self.sh_lmax = self.lmax if sh_lmax is None else check_sh_lmax(sh_lmax, self.lmax)
        self.paths = coupling_paths(lmax, self.sh_lmax, lmax)
        # e3nn's normalised MLP: unit-variance inputs give unit-variance weights, so the untrained
        # network already depends on geometry (see docs/performance.md, "initial plateau")
        self.radial = FullyConnectedNet([n_rbf, radial_hidden, len(self.paths) + features], nn.functional.silu)
        self.rbf_scale = (n_rbf / math.sqrt(math.pi)) ** 0.5  # Gaussians of width = spacing: sum of squares ~ sqrt(pi)
        self.norm = 1.0 / avg_neighbors**0.5
        m, m_sh = n_components(lmax), n_components(self.sh_lmax)
        couplings = dense_couplings(self.paths, lmax, self.sh_lmax, lmax)  # [P, M1, M2, M3]
        table = couplings.permute(0, 2, 3, 1).reshape(len(self.paths) * m_sh, m * m)  # [P*M2, M3*M1]
        self.register_buffer("sh_table", table.to(torch.get_default_dtype()), persistent=False)
        scalar_table = table.view(-1, m, m)[:, :, :1].reshape(-1, m)  # [P*M2, M3]: the column of scalar input (m1 = 0)
        self.register_buffer("sh_table_scalar", scalar_table.to(torch.get_default_dtype()), persistent=False)
        # 0/1 matrices spreading [E, P] path weights and [E, M2] harmonics over the [E, P*M2] products (see edge_weights)
        n_paths = len(self.paths)
        spread = torch.eye(n_paths * m_sh).view(n_paths, m_sh, n_paths * m_sh)
        self.register_buffer("spread_paths", spread.sum(1).to(torch.get_default_dtype()), persistent=False)  # [P, P*M2]
        self.register_buffer("spread_sh", spread.sum(0).to(torch.get_default_dtype()), persistent=False)  # [M2, P*M2]
        degree = degree_of_component(lmax)
        parity = (-1.0) ** (degree[:, None] + degree[None, :])  # [M3, M1]: (-1)^(l1 + l3) = (-1)^l2 on every path
        self.register_buffer("parity", parity.to(torch.get_default_dtype()), persistent=False)

    def forward(self, x, sh, rbf, fcut, edge_index, paired: bool = False) -> torch.Tensor:
        i, j = edge_index
        m_in = x.shape[1]  # M, or 1 for scalar-only input (the first interaction)
        coupling, channel_weights = self.edge_weights(sh, rbf, fcut, m_in)  # [E', M3, M1], [E', F]
        if paired:  # sh, rbf, fcut of the first half; the second half reversed: Y_l(-r) = (-1)^l Y_l(r)
            coupling = torch.cat([coupling, coupling * self.parity[:, :m_in]])  # [E, M3, M1]
            channel_weights = torch.cat([channel_weights, channel_weights])  # [E, F]
        sender = gather_rows(x, j) * channel_weights[:, None, :]  # [E, M1, F]
        # scalar input: the coupling is one column, the product an outer product (no per-edge matmul)
        messages = coupling * sender if m_in == 1 else couple(coupling, sender)  # [E, M3, F]
        return scatter_sum(messages, i, x.shape[0]) * self.norm  # [n_atoms, M3, F]

    def edge_weights(self, sh, rbf, fcut, m_in: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-edge coupling ``sum_p w_p(r) CG_p(Y)`` ``[E, M3, m_in]`` and channel weights ``[E, F]``; ``m_in`` is M or 1."""
        n_edges, m = sh.shape[0], n_components(self.lmax)
        weights = self.radial(rbf * self.rbf_scale) * fcut[:, None]  # [E, P + F]
        path_weights, channel_weights = weights.split([len(self.paths), self.features], dim=1)  # [E, P], [E, F]
        # w_p * Y_m for every (p, m): as two small matmuls rather than a broadcast product, whose backward sums over p
        # with the 9 harmonics innermost, a reduction torch.compile's CPU code runs in a parallel region per edge
        weighted_sh = (path_weights @ self.spread_paths) * (sh @ self.spread_sh)  # [E, P*M2]
        table = self.sh_table if m_in == m else self.sh_table_scalar
        return (weighted_sh @ table).view(n_edges, m, m_in), channel_weights
