"""Long-range electrostatics from predicted charges: a damped Coulomb sum over every pair of a structure.

``E = k_e sum_{i<j} q_i q_j erf(r_ij / (sqrt(2) sigma)) / r_ij`` for atoms of the same
structure, with no cutoff: the interaction of molecules beyond the network's
cutoff, and of ions, follows Coulomb's law (erf(r / (sqrt(2) sigma)) = 1 to 1e-10
beyond 6.4 sigma). The erf damping (Gaussian charges of width ``sigma``) keeps it
finite and smooth at short range, where the network learns the rest.

Dense in the batch's atoms: ``[n_atoms, n_atoms]`` pair matrices (fixed shapes, so
compiling and CUDA graphs work), 8 bytes each in float64: 10 MB for a batch of
1,000 atoms, 800 MB for 10,000. Open boundaries only; periodic cells need Ewald or
PME (issue 22), so a cell is refused.
"""

import math

import torch
from torch import nn

from equiprop.nn.repulsion import COULOMB
from equiprop.nn.scatter import scatter_sum

KINDS = ("none", "coulomb")


class DampedCoulomb(nn.Module):
    """``forward(charges [n], positions [n, 3], structure [n], n_structures) -> [n_structures]`` eV."""

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"electrostatics: the damping width must be positive, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, charges: torch.Tensor, positions: torch.Tensor, structure: torch.Tensor,
                n_structures: int) -> torch.Tensor:
        n = positions.shape[0]
        pairs = (structure[:, None] == structure[None, :]) & ~torch.eye(n, dtype=torch.bool, device=positions.device)
        difference = positions[:, None, :] - positions[None, :, :]  # [n, n, 3]
        squared = (difference * difference).sum(-1) + (~pairs).to(positions.dtype)  # 1 where unused: no 0/0
        distance = squared.sqrt()  # [n, n]
        kernel = torch.erf(distance / (math.sqrt(2.0) * self.sigma)) / distance * pairs.to(positions.dtype)
        atomic = 0.5 * COULOMB * charges * (kernel @ charges)  # [n]: each pair counted once
        return scatter_sum(atomic, structure, n_structures)
