"""Long-range electrostatics from predicted multipoles: a damped sum over every pair of a structure.

Each atom carries a Gaussian-smeared charge ``q_i`` and, optionally, a point dipole
``mu_i`` and a traceless quadrupole ``Theta_i`` (``1/2 sum q (3 r r^T - r^2 I)``, the
convention of the quadrupole target). With the smeared kernel
``f(r) = erf(r / (sqrt(2) sigma)) / r`` in place of ``1 / r``, the potential of atom
``j`` at ``r = r_i - r_j`` is ``q_j f - mu_j . grad f + 1/3 Theta_j : grad grad f`` and
atom ``i``'s energy in it is ``q_i phi + mu_i . grad phi + 1/3 Theta_i : grad grad phi``:

``E = k_e sum_{i<j} [q q B0 + (q_i mu_j.r - q_j mu_i.r) B1 + mu_i.mu_j B1 - (mu_i.r)(mu_j.r) B2 + ...]``

with the radial functions ``B0 = f``, ``B_n = -(1/r) dB_{n-1}/dr`` (recurrence below;
``B_n -> (2n-1)!! / r^(2n+1)``, the bare multipole tensors, beyond about 6 sigma).
There is no cutoff: the interaction of molecules beyond the network's cutoff, and of
ions, follows the multipole law; the damping keeps it finite and smooth at short
range, where the network learns the rest. Charges alone (``"coulomb"``) is the
``B0`` term.

Dense in the batch's atoms: ``[n_atoms, n_atoms]`` pair matrices (fixed shapes, so
compiling and CUDA graphs work), computed in float64 (the recurrence cancels digits
at short range): 8 bytes a pair and quantity, 10 MB for a batch of 1,000 atoms,
800 MB for 10,000. Open boundaries only; periodic cells need Ewald or PME, so a cell
is refused (models/base.py).
"""

import math

import torch
from torch import nn

from equiprop.nn.repulsion import COULOMB
from equiprop.nn.scatter import scatter_sum

#: ``none``; ``coulomb``: charges; ``multipole``: charges, atomic dipoles and (where the model has them) quadrupoles.
KINDS = ("none", "coulomb", "multipole")


def damped_radial(distance: torch.Tensor, sigma: float, order: int) -> list[torch.Tensor]:
    """``[B0, ..., B_order]`` of the Gaussian-smeared kernel, each shaped like ``distance``.

    ``B_n = ((2n - 1) B_{n-1} - (2 a^2)^n / (a sqrt(pi)) exp(-a^2 r^2)) / r^2`` with
    ``a = 1 / (sqrt(2) sigma)`` (Smith's recurrence, with erf instead of Ewald's erfc).
    """
    a = 1.0 / (math.sqrt(2.0) * sigma)
    gauss = torch.exp(-(a * distance) ** 2) / (a * math.sqrt(math.pi))
    inverse_square = 1.0 / (distance * distance)
    radial = [torch.erf(a * distance) / distance]
    for n in range(1, order + 1):
        radial.append(((2 * n - 1) * radial[-1] - (2 * a * a) ** n * gauss) * inverse_square)
    return radial


class DampedMultipoles(nn.Module):
    """``forward(charges [n], positions [n, 3], structure [n], n_structures, dipoles [n, 3] | None,
    quadrupoles [n, 3, 3] | None) -> [n_structures]`` eV (charges in e, lengths in Angstrom)."""

    def __init__(self, sigma: float = 1.0):
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"electrostatics: the damping width must be positive, got {sigma}")
        self.sigma = float(sigma)

    def forward(self, charges: torch.Tensor, positions: torch.Tensor, structure: torch.Tensor, n_structures: int,
                dipoles: torch.Tensor | None = None, quadrupoles: torch.Tensor | None = None) -> torch.Tensor:
        dtype = positions.dtype
        q, x = charges.double(), positions.double()
        n = x.shape[0]
        pairs = (structure[:, None] == structure[None, :]) & ~torch.eye(n, dtype=torch.bool, device=x.device)
        mask = pairs.double()
        r = x[:, None, :] - x[None, :, :]  # [n, n, 3]: r_i - r_j
        distance = ((r * r).sum(-1) + (1.0 - mask)).sqrt()  # [n, n]; 1 where unused: no 0/0
        order = 4 if quadrupoles is not None else (2 if dipoles is not None else 0)
        b = damped_radial(distance, self.sigma, order)
        pair = q[:, None] * q[None, :] * b[0]  # [n, n]
        if dipoles is not None:
            pair = pair + _dipole_terms(q, dipoles.double(), r, b)
        if quadrupoles is not None:
            mu = torch.zeros_like(x) if dipoles is None else dipoles.double()
            pair = pair + _quadrupole_terms(q, mu, quadrupoles.double(), r, b)
        atomic = 0.5 * COULOMB * (pair * mask).sum(1)  # [n]: each pair counted once
        return scatter_sum(atomic, structure, n_structures).to(dtype)


def _dipole_terms(q, mu, r, b):
    """Charge-dipole and dipole-dipole parts of the pair energy ``[n, n]`` (``mu [n, 3]``, ``r [n, n, 3]``)."""
    mu_i_r = torch.einsum("ijk,ik->ij", r, mu)  # mu_i . r_ij
    mu_j_r = torch.einsum("ijk,jk->ij", r, mu)  # mu_j . r_ij
    return (q[:, None] * mu_j_r - q[None, :] * mu_i_r) * b[1] + (mu @ mu.T) * b[1] - mu_i_r * mu_j_r * b[2]


def _quadrupole_terms(q, mu, theta, r, b):
    """Every pair-energy part with a quadrupole ``theta [n, 3, 3]`` (traceless, so the delta terms vanish)."""
    theta_i_r = torch.einsum("iab,ijb->ija", theta, r)  # Theta_i r_ij  [n, n, 3]
    theta_j_r = torch.einsum("jab,ijb->ija", theta, r)  # Theta_j r_ij
    r_theta_i_r, r_theta_j_r = (theta_i_r * r).sum(-1), (theta_j_r * r).sum(-1)  # [n, n]
    mu_i_r = torch.einsum("ijk,ik->ij", r, mu)
    mu_j_r = torch.einsum("ijk,jk->ij", r, mu)
    charge = (q[:, None] * r_theta_j_r + q[None, :] * r_theta_i_r) * b[2] / 3.0
    dipole = (-mu_i_r * r_theta_j_r * b[3] + 2.0 * torch.einsum("ia,ija->ij", mu, theta_j_r) * b[2]
              + r_theta_i_r * mu_j_r * b[3] - 2.0 * torch.einsum("ija,ja->ij", theta_i_r, mu) * b[2]) / 3.0
    contracted = torch.einsum("iab,jab->ij", theta, theta)
    quadrupole = (r_theta_i_r * r_theta_j_r * b[4] - 4.0 * (theta_i_r * theta_j_r).sum(-1) * b[3]
                  + 2.0 * contracted * b[2]) / 9.0
    return charge + dipole + quadrupole


class DampedCoulomb(DampedMultipoles):
    """Charges only: ``E = k_e sum_{i<j} q_i q_j erf(r_ij / (sqrt(2) sigma)) / r_ij`` (``forward`` as the base,
    dipoles and quadrupoles left out)."""
