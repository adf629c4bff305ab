"""Learned features of each element."""

import torch
from torch import nn


class ElementEmbedding(nn.Module):
    """Type indices ``[n_atoms]`` to scalar features ``[n_atoms, features]``."""

    def __init__(self, n_types: int, features: int):
        super().__init__()
        self.embedding = nn.Embedding(n_types, features)

    def forward(self, types: torch.Tensor) -> torch.Tensor:
        return self.embedding(types)


class FormalChargeEmbedding(nn.Module):
    """Formal charges ``[n_atoms]`` (nn/charge_transfer.py :class:`FormalCharges`) to scalar features
    ``[n_atoms, features]``, added to the element's: the first interaction already tells the O of H3O+
    (formal charge ~+1) from a water's (~0), which element and distance alone do not (docs/design.md
    "Formal charges as features")."""

    def __init__(self, features: int):
        super().__init__()
        self.linear = nn.Linear(1, features, bias=False)

    def forward(self, formal: torch.Tensor) -> torch.Tensor:
        return self.linear(formal[:, None])
