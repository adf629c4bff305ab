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
