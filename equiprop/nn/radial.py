"""Radial basis functions of interatomic distances and a smooth cutoff."""

import math

import torch
from torch import nn


class GaussianRBF(nn.Module):
    """Gaussians centred on ``n_rbf`` points evenly spaced from ``start`` to ``cutoff``.

    Width is the spacing between centres. Input ``[n_edges]``, output
    ``[n_edges, n_rbf]``.
    """

    def __init__(self, n_rbf: int, cutoff: float, start: float = 0.0):
        super().__init__()
        if n_rbf < 2:
            raise ValueError(f"n_rbf must be at least 2, got {n_rbf}")
        if not 0.0 <= start < cutoff:
            raise ValueError(f"need 0 <= start < cutoff, got start={start}, cutoff={cutoff}")
        centers = torch.linspace(start, cutoff, n_rbf)
        self.register_buffer("centers", centers)  # [n_rbf]
        self.register_buffer("width", centers[1] - centers[0])  # []

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        x = (distances[:, None] - self.centers) / self.width  # [n_edges, n_rbf]
        return torch.exp(-0.5 * x**2)


class CosineCutoff(nn.Module):
    """``0.5 (cos(pi d / cutoff) + 1)`` for ``d < cutoff``, else 0.

    Goes to zero with zero slope at the cutoff, so energies and forces are
    continuous when an atom crosses it. Input ``[n_edges]``, output ``[n_edges]``.
    """

    def __init__(self, cutoff: float):
        super().__init__()
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.cutoff = float(cutoff)

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        value = 0.5 * (torch.cos(distances * (math.pi / self.cutoff)) + 1.0)
        return value * (distances < self.cutoff).to(distances.dtype)
