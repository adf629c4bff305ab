"""Channel mixing within each degree l (equivariant linear map)."""

import math

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, degree_of_component
from equiprop.nn.scatter import gather_rows


class SO3Linear(nn.Module):
    """``y[:, m] = x[:, m] @ W_l`` for each component m of degree l, plus a bias on the scalars.

    Shapes: ``[n, (lmax + 1)^2, in_features] -> [n, (lmax + 1)^2, out_features]``.
    """

    def __init__(self, lmax: int, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.lmax = check_lmax(lmax, minimum=0)
        self.weight = nn.Parameter(torch.randn(self.lmax + 1, in_features, out_features) / math.sqrt(in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.register_buffer("degree", degree_of_component(self.lmax), persistent=False)
        scalar_row = (self.degree == 0).to(self.weight.dtype)[:, None, None]  # [M, 1, 1]
        self.register_buffer("scalar_row", scalar_row, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = gather_rows(self.weight, self.degree)  # [M, in, out]
        x_t = x.transpose(0, 1)  # [M, n, in]
        if self.bias is None:
            return torch.bmm(x_t, weight).transpose(0, 1)  # one matmul per component
        bias = self.bias * self.scalar_row  # [M, 1, out]: the bias on the scalar row only
        return torch.baddbmm(bias, x_t, weight).transpose(0, 1)  # [n, M, out]
