"""Gated nonlinearity: activated scalars, and non-scalars scaled by sigmoid gates."""

import torch
from e3nn import o3
from e3nn.nn import Gate
from torch import nn


class GatedNonlinearity(nn.Module):
    """Linear map from ``irreps_in`` to scalars, gates and gated irreps, then e3nn's Gate.

    Scalars (``0e``) of ``irreps_out`` pass through SiLU; each non-scalar irrep
    is multiplied by its own sigmoid gate (a scalar), which keeps equivariance.
    Shapes: ``[n, irreps_in.dim] -> [n, irreps_out.dim]``.
    """

    def __init__(self, irreps_in, irreps_out):
        super().__init__()
        self.irreps_in, irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out).simplify()
        scalars = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l == 0 and ir.p == 1])
        gated = o3.Irreps([(mul, ir) for mul, ir in irreps_out if ir.l > 0])
        if scalars.dim + gated.dim != irreps_out.dim:
            raise ValueError(f"GatedNonlinearity: irreps_out {irreps_out} may only hold 0e scalars and l > 0 irreps")
        gates = o3.Irreps([(mul, "0e") for mul, _ in gated])
        self.gate = Gate(
            scalars, [nn.functional.silu] * len(scalars), gates, [torch.sigmoid] * len(gates), gated
        )
        self.linear = o3.Linear(self.irreps_in, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.linear(x))
