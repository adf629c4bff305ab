"""Channel mixing within each degree l (equivariant linear map)."""

import math

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, degree_of_component


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.index_select(0, self.degree)  # [M, in, out]
        out = torch.bmm(x.transpose(0, 1), weight)  # [M, n, out]: one matmul per component
        if self.bias is not None:
            out[0] = out[0] + self.bias
        return out.transpose(0, 1)  # [n, M, out]
