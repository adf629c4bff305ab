"""First-order induction beyond the cutoff: each atom's induced dipole in the field of the others.

Within the cutoff the network learns how molecules polarize each other; beyond it the permanent
multipoles of ``nn/electrostatics.py`` alone would leave out induction, which for an ion is the
leading long-range term after the charge-dipole one (``-alpha q^2 / (2 r^4)``: 2.9 meV for water,
0.96 A^3 at PBE0/def2-SVP, 7 A from H3O+). With the field of every other atom's smeared charge
and dipole at atom ``i`` (``r = r_i - r_j``; ``B_n`` as in ``damped_radial``)

``F_i = sum_j w(r_ij) [q_j B1 r + (mu_j . r) B2 r - mu_j B1]``  (e / A^2),

the induced dipoles are ``mu_ind_i = alpha_i F_i`` (e A) and their energy
``E = -1/2 k_e sum_i alpha_i |F_i|^2`` (eV). ``w`` rises smoothly from 0 at ``cutoff - width`` to 1 at
the cutoff (``x^3 (10 - 15 x + 6 x^2)``), so neighbours well inside the cutoff, a molecule's own atoms
above all, induce nothing here. ``alpha_i = softplus(a_Z)`` per element (A^3), learned from the
energies; it starts at a third of water's 0.96 A^3. First order: the induced dipoles do not polarize
each other. Open boundaries only (a periodic cell raises).
"""

import math

import torch
from torch import nn

from equiprop.nn.electrostatics import damped_radial, fixed_shapes, structure_pairs
from equiprop.nn.repulsion import COULOMB
from equiprop.nn.scatter import scatter_sum

#: each element's starting polarizability (A^3): a third of a PBE0/def2-SVP water's (data/polarizability)
START_ALPHA = 0.32


def _inverse_softplus(value: float) -> float:
    return math.log(math.expm1(value))


def smooth_onset(distance: torch.Tensor, start: float, end: float) -> torch.Tensor:
    """0 below ``start``, 1 beyond ``end``, ``x^3 (10 - 15 x + 6 x^2)`` between (twice differentiable)."""
    x = ((distance - start) / (end - start)).clamp(0.0, 1.0)
    return x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)


class Induction(nn.Module):
    """``forward(charges [n], positions [n, 3], types [n], structure [n], n_structures, dipoles [n, 3] | None)
    -> (energy [n_structures] eV, induced dipoles [n, 3] e A)``."""

    def __init__(self, n_types: int, cutoff: float, width: float = 1.0, sigma: float = 1.0):
        super().__init__()
        if not 0 < width <= cutoff:
            raise ValueError(f"induction: the onset width must be in (0, cutoff={cutoff}], got {width}")
        self.start, self.end, self.sigma = float(cutoff - width), float(cutoff), float(sigma)
        self.raw_alpha = nn.Parameter(torch.full((n_types,), _inverse_softplus(START_ALPHA)))

    def polarizabilities(self) -> torch.Tensor:
        """``[n_types]`` A^3, each element's."""
        return nn.functional.softplus(self.raw_alpha)

    def forward(self, charges, positions, types, structure, n_structures: int, dipoles=None):
        field = self.field(charges, positions, structure, n_structures, dipoles)  # [n, 3]
        alpha = self.polarizabilities().to(field.dtype)[types]  # [n]
        energy = -0.5 * COULOMB * alpha * (field * field).sum(1)  # [n]
        energy = scatter_sum(energy, structure, n_structures).to(positions.dtype)
        return energy, (alpha[:, None] * field).to(positions.dtype)

    def field(self, charges, positions, structure, n_structures: int, dipoles=None) -> torch.Tensor:
        """``[n_atoms, 3]`` (e / A^2, float64): the switched field of the other atoms at each atom."""
        x, q = positions.double(), charges.double()
        mu = torch.zeros_like(x) if dipoles is None else dipoles.double()
        if fixed_shapes(structure):  # every ordered pair of the batch, [n, n]
            r = x[:, None] - x[None, :]
            same = structure[:, None] == structure[None, :]
            return self._field(q[None, :], mu[None, :], r, self._kernel(r, same)).sum(1)
        i, j = structure_pairs(structure, n_structures)
        r = x[i] - x[j]  # [n_pairs, 3]
        kernel = self._kernel(r, torch.ones_like(i, dtype=torch.bool))  # once per pair, for both directions
        at_i = self._field(q[j], mu[j], r, kernel)  # [n_pairs, 3]: j's field at i
        at_j = self._field(q[i], mu[i], -r, kernel)
        return torch.zeros_like(x).index_add(0, i, at_i).index_add(0, j, at_j)

    def _kernel(self, r, same):
        """The onset weight and ``B1``, ``B2`` at ``r [..., 3]``, each ``[...]``; pairs not ``same`` or coincident
        (the diagonal, padding atoms) weigh 0 (at distance 1: no 0/0)."""
        squared = (r * r).sum(-1)
        valid = same & (squared > 0)
        distance = torch.where(valid, squared, torch.ones_like(squared)).sqrt()
        _, b1, b2 = damped_radial(distance, self.sigma, 2)
        weight = torch.where(valid, smooth_onset(distance, self.start, self.end), torch.zeros_like(distance))
        return weight, b1, b2

    @staticmethod
    def _field(q, mu, r, kernel):
        """The switched field of charges ``q [...]`` and dipoles ``mu [..., 3]`` at ``r [..., 3]`` from them."""
        weight, b1, b2 = kernel
        mu_r = (mu * r).sum(-1)
        field = (q * b1 + mu_r * b2)[..., None] * r - b1[..., None] * mu
        return weight[..., None] * field
