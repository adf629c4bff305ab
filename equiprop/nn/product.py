"""Channel-wise tensor product of node features with themselves (raises body order)."""

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, coupling_paths, dense_couplings
from equiprop.nn.so3linear import SO3Linear


class BodyOrderProduct(nn.Module):
    """``y = TP_uuu(x, Linear(x))``: couples each channel with a mixed copy of itself.

    After a convolution (two-body messages), the product of two such features
    carries three-body information. One learned weight per channel and path
    ``l1 x l2 -> l3``. Shapes: ``[n, features, (lmax + 1)^2] -> same``.
    """

    def __init__(self, lmax: int, features: int):
        super().__init__()
        self.lmax = check_lmax(lmax)
        self.mix = SO3Linear(lmax, features, features)
        paths = coupling_paths(lmax, lmax, lmax)
        cg = dense_couplings(paths, lmax, lmax, lmax).flatten(1, 2)  # [P, M*M, M]
        self.register_buffer("couplings", cg.to(torch.get_default_dtype()))
        self.weight = nn.Parameter(torch.randn(len(paths), features))  # [P, F]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, f, m = x.shape
        y = self.mix(x)
        outer = (x[:, :, :, None] * y[:, :, None, :]).reshape(n, f, m * m)  # [n, F, M*M]
        kernel = torch.einsum("pf,pkm->fkm", self.weight, self.couplings)  # [F, M*M, M]
        return torch.bmm(outer.transpose(0, 1), kernel).transpose(0, 1)  # [n, F, M]
