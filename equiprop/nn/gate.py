"""Gated nonlinearity: activated scalars, and each l > 0 channel scaled by a sigmoid gate."""

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, degree_of_component
from equiprop.nn.scatter import gather_rows


class GatedNonlinearity(nn.Module):
    """SiLU on the scalars; ``x_l`` times ``sigmoid(g_l)`` for l > 0, gates from the scalars.

    The gates are invariant, so equivariance is kept. Computed as ``x * sigmoid(g)``
    with ``g = x`` for the scalars (``SiLU(s) = s * sigmoid(s)``): one sigmoid, one
    gather and one product for all degrees. Shapes:
    ``[n, (lmax + 1)^2, features] -> [n, (lmax + 1)^2, features]``; with
    ``lmax = 0`` it is SiLU on ``[n, 1, features]``.
    """

    def __init__(self, lmax: int, features: int):
        super().__init__()
        self.lmax = check_lmax(lmax, minimum=0)
        self.gates = nn.Linear(features, self.lmax * features) if self.lmax else None
        self.register_buffer("degree", degree_of_component(self.lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gates is None:
            return nn.functional.silu(x)
        scalars = x[:, 0]  # [n, features]
        logits = torch.cat([scalars, self.gates(scalars)], dim=1).view(x.shape[0], self.lmax + 1, x.shape[2])  # [n, L, F]
        return x * gather_rows(torch.sigmoid(logits), self.degree, dim=1)  # [n, M, features]
