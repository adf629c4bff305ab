"""The damped Coulomb energy of a periodic cell: torch-pme's Ewald sum of the same smeared kernel.

The open-boundary term (nn/electrostatics.py) sums ``k_e q_i q_j erf(r / (sqrt(2) sigma)) / r``
over the pairs of a cluster. That kernel is exactly the long-range half of Ewald's split with
smearing ``sigma``, so in a cell it needs no real-space part: the energy over all periodic images
is torch-pme's reciprocal-space sum alone (``EwaldCalculator`` with an empty neighbour list),
less each smeared charge's interaction with itself, with a uniform background for a charged cell
and tin-foil (conducting) boundaries, as in torch-pme. The sum stops at ``k = 4 pi / sigma``
(``lr_wavelength = sigma / 2``): for a dipole of two charges in a 40 A box that is within 1e-8
of the open-boundary energy plus the tin-foil term ``-2 pi k_e M^2 / (3 V)``, where
``lr_wavelength = sigma`` is 4e-4 off; tests/test_electrostatics.py checks the box limit.

Cost: about ``(4 L / sigma)^3`` wave vectors times the atoms of a cell, each cell on its own
(118,000 for a 12 A box: about 0.3 s per energy and forces of 192 atoms on 2 cores). PME
(torch-pme's ``PMECalculator``) would be the choice for larger cells.
"""

import math

import torch
from torch import nn

from equiprop.nn.repulsion import COULOMB


class PeriodicCoulomb(nn.Module):
    """``forward(charges [n], positions [n, 3], cell [3, 3]) -> []`` eV: one periodic cell (rows of ``cell``
    are its vectors, Angstrom; charges in e)."""

    def __init__(self, sigma: float = 1.0, wavelength: float | None = None):
        super().__init__()
        from torchpme import CoulombPotential, EwaldCalculator

        self.sigma = float(sigma)
        self.calculator = EwaldCalculator(CoulombPotential(smearing=self.sigma, prefactor=COULOMB),
                                          lr_wavelength=float(wavelength or sigma / 2))

    def forward(self, charges: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        q = charges.double()[:, None]  # [n, 1]: one charge channel
        x = positions.double()
        no_pairs = torch.zeros((0, 2), dtype=torch.long, device=x.device)  # no real-space part: see above
        potential = self.calculator(q, cell.double(), x, no_pairs, x.new_zeros(0))  # [n, 1], pairs halved
        return (q * potential).sum().to(positions.dtype)


class PeriodicMultipoles(nn.Module):
    """``forward(charges [n], positions [n, 3], cell [3, 3], dipoles [n, 3], quadrupoles [n, 3, 3] | None) -> []`` eV.

    The same smeared charges, point dipoles and traceless quadrupoles as ``DampedMultipoles`` (nn/electrostatics.py,
    whose pair kernel is every derivative of ``f = erf(r / (sqrt(2) sigma)) / r``), summed over every image of one
    cell. ``f`` is Ewald's long-range half, so again only the reciprocal sum remains:

    ``E = k_e / (2 V) sum_{k != 0} G(k) |S(k)|^2 - self - background``,
    ``S(k) = sum_j (q_j - i k . mu_j - 1/3 k . Theta_j . k) exp(-i k . r_j)``,

    with torch-pme's wave vectors and ``G(k) = 4 pi exp(-sigma^2 k^2 / 2) / k^2`` (its ``CoulombPotential``'s); the
    self term is each atom's pair energy with itself at ``r = 0`` (``q^2 B0(0) + mu^2 B1(0) + 2/9 Theta : Theta
    B2(0)``, halved), the background that of a charged cell, tin-foil boundaries. torch-pme sums charges alone
    (``PeriodicCoulomb``) or dipoles alone (``CalculatorDipole``), not their cross terms, hence this sum; with
    only charges it equals ``PeriodicCoulomb`` (tests/test_electrostatics.py).
    """

    def __init__(self, sigma: float = 1.0, wavelength: float | None = None, chunk: int = 4096):
        super().__init__()
        self.sigma, self.chunk = float(sigma), int(chunk)
        self.wavelength = float(wavelength or sigma / 2)

    def forward(self, charges: torch.Tensor, positions: torch.Tensor, cell: torch.Tensor,
                dipoles: torch.Tensor, quadrupoles: torch.Tensor | None = None) -> torch.Tensor:
        from torchpme.lib import generate_kvectors_for_ewald

        q, x, cell64, mu = charges.double(), positions.double(), cell.double(), dipoles.double()
        theta = None if quadrupoles is None else quadrupoles.double()
        ns = torch.ceil(torch.linalg.norm(cell64, dim=1) / self.wavelength).long()  # k up to 2 pi / wavelength
        k = generate_kvectors_for_ewald(cell64, ns)[1:]  # [K, 3], k = 0 left out (tin foil)
        volume = torch.abs(torch.linalg.det(cell64))
        reciprocal = x.new_zeros(())
        for part in torch.split(k, self.chunk):
            real = q[None, :].expand(len(part), -1)  # [K', n]: q - 1/3 k.Theta.k ...
            if theta is not None:
                real = real - torch.einsum("ka,nab,kb->kn", part, theta, part) / 3.0
            imaginary = -part @ mu.T  # ... and -k.mu, times exp(-i k.r)
            phase = part @ x.T  # [K', n]
            cos, sin = torch.cos(phase), torch.sin(phase)
            s_re = (real * cos + imaginary * sin).sum(1)  # [K']
            s_im = (imaginary * cos - real * sin).sum(1)
            k_squared = (part * part).sum(1)
            green = 4 * math.pi * torch.exp(-0.5 * self.sigma**2 * k_squared) / k_squared
            reciprocal = reciprocal + (green * (s_re * s_re + s_im * s_im)).sum()
        a = 1.0 / (math.sqrt(2.0) * self.sigma)
        self_energy = (q * q).sum() * 2 * a / math.sqrt(math.pi) + (mu * mu).sum() * 4 * a**3 / (3 * math.sqrt(math.pi))
        if theta is not None:
            self_energy = self_energy + (theta * theta).sum() * (2.0 / 9.0) * 8 * a**5 / (5 * math.sqrt(math.pi))
        background = math.pi * self.sigma**2 * q.sum() ** 2 / volume
        energy = COULOMB * (reciprocal / (2 * volume) - self_energy / 2 - background)
        return energy.to(positions.dtype)
