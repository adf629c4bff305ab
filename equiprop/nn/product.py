"""Channel-wise tensor product of node features with themselves (raises body order)."""

import torch
from e3nn import o3
from torch import nn

from equiprop.nn.irreps import check_uniform, coupling_paths


class BodyOrderProduct(nn.Module):
    """``y = TP_uuu(x, Linear(x))``: couples each channel with a mixed copy of itself.

    After a convolution (two-body messages), the product of two such features
    carries three-body information. Learned weight per channel and path.
    Shapes: ``[n_atoms, irreps.dim] -> [n_atoms, irreps.dim]``.
    """

    def __init__(self, irreps):
        super().__init__()
        self.irreps_in = self.irreps_out = o3.Irreps(irreps)
        check_uniform(self.irreps_in, "BodyOrderProduct")
        self.mix = o3.Linear(self.irreps_in, self.irreps_in)
        paths = coupling_paths(self.irreps_in, self.irreps_in, self.irreps_out)
        self.tp = o3.TensorProduct(
            self.irreps_in, self.irreps_in, self.irreps_out,
            [(i1, i2, i_out, "uuu", True) for i1, i2, i_out in paths],
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tp(x, self.mix(x))
