"""Gated nonlinearity: activated scalars, and each l > 0 channel scaled by a sigmoid gate."""

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, repeat_degrees


class GatedNonlinearity(nn.Module):
    """SiLU on the scalars; ``x_l`` times ``sigmoid(g_l)`` for l > 0, gates from the scalars.

    The gates are invariant, so equivariance is kept. Shapes:
    ``[n, (lmax + 1)^2, features] -> [n, (lmax + 1)^2, features]``; with
    ``lmax = 0`` it is SiLU on ``[n, 1, features]``.
    """

    def __init__(self, lmax: int, features: int):
        super().__init__()
        self.lmax = check_lmax(lmax, minimum=0)
        self.gates = nn.Linear(features, self.lmax * features) if self.lmax else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gates is None:
            return nn.functional.silu(x)
        scalars = x[:, 0]  # [n, features]
        gates = torch.sigmoid(self.gates(scalars)).view(x.shape[0], self.lmax, x.shape[2])  # [n, lmax, features]
        gated = x[:, 1:] * repeat_degrees(gates, dim=1, first_degree=1)  # [n, M - 1, features]
        return torch.cat([nn.functional.silu(scalars)[:, None], gated], dim=1)
