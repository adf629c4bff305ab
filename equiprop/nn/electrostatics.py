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

Pairs of each structure (``structure_pairs``): eagerly only those within a structure;
while compiling, tracing or recording a CUDA graph, which need shapes that do not
depend on values, every pair of the batch by broadcasting, the others weighted 0. In float64 (the
recurrence cancels digits at short range): about 0.2 kB a pair with quadrupoles,
0.1 GB for one 1,000-atom cluster. A periodic cell's multipoles are summed over every image by
the Ewald sum of the same kernel (nn/ewald.py: torch-pme's for charges alone, a reciprocal sum on
torch-pme's wave vectors with dipoles and quadrupoles).
"""

import math

import torch
from torch import nn

from equiprop.nn.ewald import PeriodicCoulomb, PeriodicMultipoles
from equiprop.nn.repulsion import COULOMB
from equiprop.nn.scatter import scatter_sum

#: ``none``; ``coulomb``: charges; ``multipole``: charges, atomic dipoles and (where the model has them) quadrupoles;
#: ``polarizable``: ``multipole`` plus first-order induction beyond the cutoff (nn/induction.py).
KINDS = ("none", "coulomb", "multipole", "polarizable")


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
        self.ewald = None  # PeriodicCoulomb or PeriodicMultipoles, built at the first periodic cell (imports torch-pme)

    def forward(self, charges: torch.Tensor, positions: torch.Tensor, structure: torch.Tensor, n_structures: int,
                dipoles: torch.Tensor | None = None, quadrupoles: torch.Tensor | None = None,
                cell: torch.Tensor | None = None, periodic: torch.Tensor | None = None) -> torch.Tensor:
        """``cell [n_structures, 3, 3]`` and ``periodic [n_structures]`` (bool; eagerly only): those structures'
        multipoles are summed over all images (nn/ewald.py), the others over their pairs."""
        if periodic is None or not bool(periodic.any()):
            return self._open(charges, positions, structure, n_structures, dipoles, quadrupoles)
        energy = self._open(charges, positions, structure, n_structures, dipoles, quadrupoles, periodic=periodic)
        multipoles = dipoles is not None or quadrupoles is not None
        if self.ewald is None or isinstance(self.ewald, PeriodicMultipoles) != multipoles:
            # not a submodule: torch-pme's buffers stay out of the state dict (checkpoints load either way)
            object.__setattr__(self, "ewald", PeriodicMultipoles(self.sigma) if multipoles else PeriodicCoulomb(self.sigma))
        self.ewald.to(positions.device)
        if multipoles and dipoles is None:
            dipoles = torch.zeros_like(positions)
        cells = []
        for s in periodic.nonzero()[:, 0].tolist():
            mine = structure == s
            extra = () if not multipoles else (dipoles[mine], None if quadrupoles is None else quadrupoles[mine])
            cells.append(self.ewald(charges[mine], positions[mine], cell[s], *extra))
        return energy.index_add(0, periodic.nonzero()[:, 0], torch.stack(cells))

    def _open(self, charges, positions, structure, n_structures, dipoles=None, quadrupoles=None, periodic=None):
        """The pair sum; pairs of ``periodic`` structures (eagerly) left out."""
        x, q = positions.double(), charges.double()
        mu = None if dipoles is None and quadrupoles is None else (
            torch.zeros_like(x) if dipoles is None else dipoles.double())
        theta = None if quadrupoles is None else quadrupoles.double()
        if fixed_shapes(structure):  # every ordered pair of the batch, [n, n]: shapes follow the inputs
            i, j = slice(None), slice(None)
            left = lambda a: a[:, None]  # noqa: E731
            right = lambda a: a[None, :]  # noqa: E731
            weight, owner = 0.5, structure  # each unordered pair twice; row i's energies to i's structure
        else:  # the pairs i < j of each structure, [n_pairs]
            i, j = structure_pairs(structure, n_structures)
            if periodic is not None:
                i, j = i[~periodic[structure[i]]], j[~periodic[structure[i]]]
            left = lambda a: a[i]  # noqa: E731
            right = lambda a: a[j]  # noqa: E731
            weight, owner = 1.0, structure[i]
        r = left(x) - right(x)  # r_i - r_j
        squared = (r * r).sum(-1)
        # other structures' pairs (dense), the diagonal and coincident padding atoms weigh 0 (and get 1: no 0/0)
        valid = (left(structure) == right(structure)) & (squared > 0)
        distance = torch.where(valid, squared, torch.ones_like(squared)).sqrt()
        b = damped_radial(distance, self.sigma, 4 if theta is not None else (2 if mu is not None else 0))
        pair = left(q) * right(q) * b[0]
        if mu is not None:
            pair = pair + _dipole_terms(left(q), right(q), left(mu), right(mu), r, b)
        if theta is not None:
            pair = pair + _quadrupole_terms(left(q), right(q), left(mu), right(mu), left(theta), right(theta), r, b)
        pair = weight * COULOMB * torch.where(valid, pair, torch.zeros_like(pair))
        if pair.dim() == 2:
            pair = pair.sum(1)  # [n]
        return scatter_sum(pair, owner, n_structures).to(positions.dtype)


def fixed_shapes(structure: torch.Tensor) -> bool:
    """Whether values may not decide shapes: compiling, tracing (metatomic export), recording a CUDA graph."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing()
            or (structure.is_cuda and torch.cuda.is_current_stream_capturing()))


def structure_pairs(structure: torch.Tensor, n_structures: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Atom pairs ``i < j`` of the same structure (``structure [n_atoms]`` sorted), ``[n_pairs]`` each."""
    counts = torch.bincount(structure, minlength=n_structures).tolist()
    blocks, start = [], 0
    for count in counts:
        if count > 1:
            blocks.append(torch.triu_indices(count, count, 1, device=structure.device) + start)
        start += count
    if not blocks:
        empty = structure.new_zeros(0)
        return empty, empty
    pairs = torch.cat(blocks, dim=1)
    return pairs[0], pairs[1]


def _dipole_terms(q_i, q_j, mu_i, mu_j, r, b):
    """Charge-dipole and dipole-dipole parts of the pair energy ``[...]`` (``mu [..., 3]``, ``r = r_i - r_j [..., 3]``;
    ``...`` is ``n_pairs``, or ``n, n`` by broadcasting)."""
    mu_i_r, mu_j_r = (mu_i * r).sum(-1), (mu_j * r).sum(-1)
    return (q_i * mu_j_r - q_j * mu_i_r) * b[1] + (mu_i * mu_j).sum(-1) * b[1] - mu_i_r * mu_j_r * b[2]


def _quadrupole_terms(q_i, q_j, mu_i, mu_j, theta_i, theta_j, r, b):
    """Every pair-energy part with a quadrupole ``theta [..., 3, 3]`` (traceless: the delta terms vanish)."""
    theta_i_r = (theta_i @ r[..., None])[..., 0]  # Theta_i r  [..., 3]
    theta_j_r = (theta_j @ r[..., None])[..., 0]
    r_theta_i_r, r_theta_j_r = (theta_i_r * r).sum(-1), (theta_j_r * r).sum(-1)  # [...]
    mu_i_r, mu_j_r = (mu_i * r).sum(-1), (mu_j * r).sum(-1)
    charge = (q_i * r_theta_j_r + q_j * r_theta_i_r) * b[2] / 3.0
    dipole = (-mu_i_r * r_theta_j_r * b[3] + 2.0 * (mu_i * theta_j_r).sum(-1) * b[2]
              + r_theta_i_r * mu_j_r * b[3] - 2.0 * (theta_i_r * mu_j).sum(-1) * b[2]) / 3.0
    contracted = (theta_i * theta_j).sum((-2, -1))
    quadrupole = (r_theta_i_r * r_theta_j_r * b[4] - 4.0 * (theta_i_r * theta_j_r).sum(-1) * b[3]
                  + 2.0 * contracted * b[2]) / 9.0
    return charge + dipole + quadrupole


class DampedCoulomb(DampedMultipoles):
    """Charges only: ``E = k_e sum_{i<j} q_i q_j erf(r_ij / (sqrt(2) sigma)) / r_ij`` (``forward`` as the base,
    dipoles and quadrupoles left out)."""
