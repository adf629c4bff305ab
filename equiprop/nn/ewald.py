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
