"""Gated nonlinearity: activated scalars, and each l > 0 channel scaled by a sigmoid gate."""

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, degree_of_component


class GatedNonlinearity(nn.Module):
    """SiLU on the scalars; ``x_l`` times ``sigmoid(g_l)`` for l > 0, gates from the scalars.

    The gates are invariant, so equivariance is kept. Shapes:
    ``[n, features, (lmax + 1)^2] -> [n, features, (lmax + 1)^2]``.
    """

    def __init__(self, lmax: int, features: int):
        super().__init__()
        self.lmax = check_lmax(lmax)
        self.gates = nn.Linear(features, self.lmax * features)
        self.register_buffer("gate_of_component", degree_of_component(self.lmax)[1:] - 1, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scalars = x[:, :, 0]  # [n, features]
        gates = torch.sigmoid(self.gates(scalars)).view(x.shape[0], x.shape[1], self.lmax)  # [n, features, lmax]
        gated = x[:, :, 1:] * gates[:, :, self.gate_of_component]  # [n, features, M - 1]
        return torch.cat([nn.functional.silu(scalars)[:, :, None], gated], dim=2)
