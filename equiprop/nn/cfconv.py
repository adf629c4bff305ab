"""SchNet's continuous-filter convolution and interaction block."""

import torch
from torch import nn

from equiprop.nn.mlp import ShiftedSoftplus, mlp
from equiprop.nn.scatter import gather_rows, scatter_sum


class CFConv(nn.Module):
    """``y_i = sum_j x_j * W(r_ij)`` with filter ``W = MLP(rbf(r_ij)) * fcut(r_ij)``.

    Shapes: ``x [n_atoms, features]``, ``rbf [n_edges, n_rbf]``,
    ``fcut [n_edges]``, ``edge_index [2, n_edges]`` -> ``[n_atoms, features]``.
    With ``paired`` (edge ``e + E/2`` is edge ``e`` reversed), ``rbf`` and ``fcut``
    cover the first half only: the filter depends on the distance alone.
    """

    def __init__(self, features: int, n_rbf: int):
        super().__init__()
        self.filter = mlp([n_rbf, features, features], ShiftedSoftplus)

    def forward(self, x, rbf, fcut, edge_index, paired: bool = False) -> torch.Tensor:
        i, j = edge_index
        w = self.filter(rbf) * fcut[:, None]  # [n_edges, features] (or n_edges / 2)
        if paired:
            w = torch.cat([w, w])
        return scatter_sum(gather_rows(x, j) * w, i, x.shape[0])


class SchNetInteraction(nn.Module):
    """Atom-wise linear, CFConv, then a two-layer update: ``[n_atoms, F] -> [n_atoms, F]``.

    The model adds the result to its input (residual update).
    """

    def __init__(self, features: int, n_rbf: int):
        super().__init__()
        self.in2filter = nn.Linear(features, features, bias=False)
        nn.init.xavier_uniform_(self.in2filter.weight)
        self.conv = CFConv(features, n_rbf)
        self.update = mlp([features, features, features], ShiftedSoftplus)

    def forward(self, x, rbf, fcut, edge_index, paired: bool = False) -> torch.Tensor:
        return self.update(self.conv(self.in2filter(x), rbf, fcut, edge_index, paired))
