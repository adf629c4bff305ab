"""Harmonic vibrations and IR intensities of one structure, by autograd (no finite differences).

The Hessian ``d^2 E / dx dx`` is the autograd Jacobian of the forces, and the
atomic polar tensors ``d mu / dx`` the Jacobian of the dipole, both at the fixed
neighbour graph of the structure (the cutoff function is smooth, so the graph
does not change under infinitesimal displacements). Frequencies, normal modes
and intensities follow ``ase.vibrations.Infrared`` exactly, so numbers compare:
intensities in (D/Angstrom)^2/amu, frequencies in cm^-1 (imaginary ones negative).
The analysis runs in float64 on a copy of the model.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms, units

from equiprop.data.batch import collate
from equiprop.data.graph import atoms_to_graph
from equiprop.keys import Property
from equiprop.models.committee import Committee

#: sqrt(eV / Angstrom^2 / amu) -> eV (hbar omega), as ase.vibrations.
_HBAR_OMEGA = units._hbar * 1e10 / np.sqrt(units._e * units._amu)


@dataclass
class Harmonic:
    """Harmonic analysis of ``atoms`` (``n = 3 * n_atoms`` degrees of freedom)."""

    atoms: Atoms
    hessian: np.ndarray  # [n, n], eV/Angstrom^2
    dipole_derivatives: np.ndarray | None  # [n, 3], d mu / d x in e (None: the model predicts no dipole)
    frequencies: np.ndarray  # [n], cm^-1, ascending; imaginary modes as negative numbers
    modes: np.ndarray  # [n, n_atoms, 3]: mode k's Cartesian displacement pattern (mass-weighted eigenvector / sqrt(m))
    intensities: np.ndarray  # [n], (D/Angstrom)^2/amu (NaN without a dipole)
    raman_activities: np.ndarray | None = None  # [n], Angstrom^4/amu, 45 a'^2 + 7 g'^2 (None: no polarizability)

    def vibrations(self, above: float = 50.0) -> np.ndarray:
        """Indices of the modes above ``above`` cm^-1 (translations, rotations and soft modes left out)."""
        return np.flatnonzero(self.frequencies > above)


def derivatives(model, atoms: Atoms) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(Hessian ``[3N, 3N]`` eV/Angstrom^2, dipole derivatives ``[3N, 3]`` e, polarizability derivatives
    ``[3N, 3, 3]`` Angstrom^2) of ``atoms``; the last two None where the model lacks the target.

    A committee's are the members' means (all are linear in the energy, dipole and polarizability).
    """
    members = list(model.members) if isinstance(model, Committee) else [model]
    parts = [_derivatives(copy.deepcopy(member).double().eval(), atoms) for member in members]
    return tuple(None if parts[0][k] is None else np.mean([p[k] for p in parts], axis=0) for k in range(3))


def _derivatives(model, atoms: Atoms):
    if Property.ENERGY not in model.targets:
        raise ValueError("harmonic vibrations need an energy model (targets include energy)")
    batch = collate([atoms_to_graph(atoms, model.type_map, model.cutoff)])
    positions = batch.positions.detach().requires_grad_(True)  # [N, 3]
    out = model.outputs(batch, positions)
    (gradient,) = torch.autograd.grad(out[Property.ENERGY].sum(), positions, create_graph=True)
    gradient = gradient.reshape(-1)  # [3N]
    rows = [torch.autograd.grad(g, positions, retain_graph=True)[0].reshape(-1) for g in gradient]
    hessian = torch.stack(rows).detach().numpy()
    hessian = 0.5 * (hessian + hessian.T)  # exact up to rounding; symmetric for eigh
    return hessian, _jacobian(out.get(Property.DIPOLE), positions), _jacobian(out.get(Property.POLARIZABILITY), positions)


def _jacobian(value: torch.Tensor | None, positions: torch.Tensor) -> np.ndarray | None:
    """``d value[0] / d positions`` as ``[3N, *value.shape[1:]]`` (one backward pass per component), or None."""
    if value is None:
        return None
    flat = value[0].reshape(-1)
    columns = [torch.autograd.grad(v, positions, retain_graph=True)[0].reshape(-1) for v in flat]
    return torch.stack(columns, dim=1).detach().numpy().reshape(-1, *value.shape[1:])


def harmonic(model, atoms: Atoms) -> Harmonic:
    """Frequencies, modes and IR intensities of ``atoms`` (already at a minimum of ``model``)."""
    hessian, dipole_derivatives, alpha_derivatives = derivatives(model, atoms)
    weights = np.repeat(atoms.get_masses() ** -0.5, 3)  # [3N], amu^-1/2
    omega2, vectors = np.linalg.eigh(weights[:, None] * hessian * weights)  # eV/Angstrom^2/amu
    frequencies = np.sign(omega2) * _HBAR_OMEGA * np.sqrt(np.abs(omega2)) / units.invcm
    modes = (weights[:, None] * vectors).T.reshape(len(omega2), len(atoms), 3)
    if dipole_derivatives is None:
        intensities = np.full(len(omega2), np.nan)
    else:  # d mu / d Q for mass-weighted normal coordinates Q, in (D/Angstrom)^2/amu as ASE's Infrared
        d_mu_d_q = vectors.T @ (weights[:, None] * dipole_derivatives)  # [modes, 3], e/amu^1/2
        intensities = (d_mu_d_q ** 2).sum(axis=1) / units.Debye ** 2
    raman = None if alpha_derivatives is None else raman_activities(
        np.einsum("km,kab->mab", weights[:, None] * vectors, alpha_derivatives))
    return Harmonic(atoms.copy(), hessian, dipole_derivatives, frequencies, modes, intensities, raman)


def raman_activities(d_alpha_d_q: np.ndarray) -> np.ndarray:
    """``45 a'^2 + 7 g'^2`` per mode (Angstrom^4/amu) from ``d alpha / d Q`` ``[modes, 3, 3]``: ``a'`` the
    isotropic part, ``g'^2 = 3/2 b' : b'`` with ``b'`` the traceless part (the convention of Gaussian and ASE)."""
    isotropic = np.trace(d_alpha_d_q, axis1=1, axis2=2) / 3
    traceless = d_alpha_d_q - isotropic[:, None, None] * np.eye(3)
    return 45 * isotropic ** 2 + 7 * 1.5 * np.einsum("mab,mab->m", traceless, traceless)


def broadened(frequencies: np.ndarray, intensities: np.ndarray, grid: np.ndarray, width: float) -> np.ndarray:
    """Lorentzians of full width at half maximum ``width`` (cm^-1), each of area its intensity, on ``grid``."""
    gamma = 0.5 * width
    return (intensities[None, :] * gamma / np.pi / ((grid[:, None] - frequencies[None, :]) ** 2 + gamma ** 2)).sum(axis=1)
