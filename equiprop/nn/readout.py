"""Per-atom readouts and the physics that turns them into structure properties."""

import torch
from torch import nn

from equiprop.nn.gate import GatedNonlinearity
from equiprop.nn.mlp import mlp
from equiprop.nn.scatter import scatter_sum
from equiprop.nn.so3linear import SO3Linear


class ScalarReadout(nn.Module):
    """Invariant features ``[n_atoms, features]`` to one scalar per atom ``[n_atoms]``.

    With ``zero_init`` the last layer starts at zero, so an untrained head
    predicts exactly the normalisation baseline (e.g. the element reference
    energies) instead of random values whose huge initial loss would stall
    Adam for many steps. Not for charges that only feed a dipole magnitude:
    zero charges give a zero dipole, where ``|mu|`` has zero gradient, and the
    head would never learn (seen on QM9: docs/benchmarks.md).
    """

    def __init__(self, features: int, activation: type[nn.Module] = nn.SiLU, zero_init: bool = True):
        super().__init__()
        self.net = mlp([features, max(features // 2, 1), 1], activation)
        if zero_init:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


class PolarizabilityReadout(nn.Module):
    """Invariant features ``[n_atoms, features]`` to two scalars per atom ``[n_atoms, 2]``: an isotropic
    polarizability and the weight of the atom's arm tensor (``AtomisticModel._polarizability``), both starting at zero."""

    def __init__(self, features: int, activation: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.net = mlp([features, max(features // 2, 1), 2], activation)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class VectorReadout(nn.Module):
    """Equivariant features ``[n_atoms, (lmax + 1)^2, features]`` to one l=1 vector per atom ``[n_atoms, 3]``.

    A gated layer on the l <= 1 part, then a linear map to one l=1 channel; the
    l=1 components are Cartesian (x, y, z), as in e3nn's spherical harmonics.
    """

    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.hidden = SO3Linear(1, features, hidden)
        self.gate = GatedNonlinearity(1, hidden)
        self.out = SO3Linear(1, hidden, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.gate(self.hidden(x[:, :4])))[:, 1:, 0]


class TensorReadout(nn.Module):
    """Equivariant features ``[n_atoms, (lmax + 1)^2, features]`` (lmax >= 2) to one traceless symmetric
    Cartesian tensor per atom ``[n_atoms, 3, 3]`` (an atomic quadrupole).

    A gated layer on the l <= 2 part, a linear map to one l=2 channel, and e3nn's
    Clebsch-Gordan coefficients ``wigner_3j(1, 1, 2)`` from its five components to
    the 3 x 3 tensor in the l=1 (Cartesian) basis of :class:`VectorReadout`.
    """

    def __init__(self, features: int, hidden: int):
        super().__init__()
        from e3nn import o3

        self.hidden = SO3Linear(2, features, hidden)
        self.gate = GatedNonlinearity(2, hidden)
        self.out = SO3Linear(2, hidden, 1, bias=False)
        self.register_buffer("cartesian", o3.wigner_3j(1, 1, 2) * 5 ** 0.5, persistent=False)  # [3, 3, 5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        components = self.out(self.gate(self.hidden(x[:, :9])))[:, 4:9, 0]  # [n_atoms, 5]: the l=2 channel
        return torch.einsum("abm,nm->nab", self.cartesian.to(components.dtype), components)


def point_quadrupoles(charges: torch.Tensor | None, dipoles: torch.Tensor | None, arms: torch.Tensor) -> torch.Tensor:
    """Traceless quadrupoles ``[n_atoms, 3, 3]`` of point charges ``[n_atoms]`` and point dipoles ``[n_atoms, 3]``
    at ``arms [n_atoms, 3]`` from the origin: ``q (3 r r^T - r^2 I) / 2`` and ``3/2 (r mu^T + mu r^T) - (r . mu) I``.
    """
    eye = torch.eye(3, dtype=arms.dtype, device=arms.device)
    theta = arms.new_zeros((arms.shape[0], 3, 3))
    if charges is not None:
        outer = arms[:, :, None] * arms[:, None, :]
        theta = theta + 0.5 * charges[:, None, None] * (3 * outer - (arms * arms).sum(1)[:, None, None] * eye)
    if dipoles is not None:
        mixed = arms[:, :, None] * dipoles[:, None, :]
        theta = theta + 1.5 * (mixed + mixed.transpose(1, 2)) - (arms * dipoles).sum(1)[:, None, None] * eye
    return theta


def constrain_charges(
    charges: torch.Tensor, structure: torch.Tensor, total_charge: torch.Tensor, n_atoms: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Shift each structure's charges so they sum exactly to its total charge.

    ``weights`` None: the excess is spread evenly over the structure's atoms. Else the
    atom's share is ``w_i / sum_j w_j`` of its structure (``weights`` positive, learned:
    :class:`ChargeSpread`), so atoms whose environment says "neutral molecule far from
    the ion" can take almost none of it (docs/design.md "Where the excess charge goes").

    Shapes: ``charges [n_atoms]``, ``structure [n_atoms]``, ``total_charge
    [n_structures]``, ``n_atoms [n_structures]``, ``weights [n_atoms]`` -> ``[n_atoms]``.
    """
    n_structures = n_atoms.shape[0]
    excess = total_charge - scatter_sum(charges, structure, n_structures)  # [n_structures]
    if weights is None:
        return charges + (excess / n_atoms.to(charges.dtype))[structure]
    return charges + weights * (excess / scatter_sum(weights, structure, n_structures))[structure]


class ChargeSpread(nn.Module):
    """Invariant features ``[n_atoms, features]`` to positive weights ``[n_atoms]`` for
    :func:`constrain_charges`: ``softplus(mlp(x)) + floor``. The last layer starts at zero,
    so an untrained model spreads evenly; the floor keeps every structure's sum positive.
    As AIMNet2's charge equilibration weights (Anstine et al. 2024), here for the excess only.
    """

    def __init__(self, features: int, floor: float = 1e-3):
        super().__init__()
        self.head = ScalarReadout(features, zero_init=True)
        self.floor = floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.head(x)) + self.floor


def centered_positions(positions: torch.Tensor, structure: torch.Tensor, n_atoms: torch.Tensor) -> torch.Tensor:
    """Positions relative to each structure's geometric centre, ``[n_atoms, 3]``."""
    center = scatter_sum(positions, structure, n_atoms.shape[0]) / n_atoms.to(positions.dtype)[:, None]
    return positions - center[structure]
