"""Energy, forces, dipole and Hirshfeld charges of one structure with PySCF."""

import time
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree

from equiprop.errors import InputError, SetupError, require, where
from equiprop.labelling.hirshfeld import hirshfeld_charges
from equiprop.labelling.settings import DFTSettings


@dataclass(frozen=True)
class DFTLabels:
    """One structure's labels in equiprop's units."""

    energy: float  # eV
    forces: np.ndarray  # [n_atoms, 3], eV/Angstrom
    dipole: np.ndarray  # [3], e*Angstrom, about the geometric centre
    charges: np.ndarray  # [n_atoms], e, Hirshfeld, summing to the total charge
    seconds: float
    quadrupole: np.ndarray | None = None  # [3, 3], e*Angstrom^2, traceless, about the geometric centre
    polarizability: np.ndarray | None = None  # [3, 3], Angstrom^3 (alpha / (4 pi eps0)), symmetric


def quadrupole_moment(mf, centre_bohr: np.ndarray) -> np.ndarray:
    """Traceless quadrupole ``Theta = 1/2 sum (3 r r^T - r^2 I)`` of nuclei and electrons about ``centre_bohr``.

    ``[3, 3]`` in e*Angstrom^2 (Buckingham's convention; the electrons count
    with charge -1), from the converged density's second-moment integrals.
    """
    mol = mf.mol
    density = mf.make_rdm1()
    if density.ndim == 3:  # unrestricted: alpha + beta
        density = density[0] + density[1]
    with mol.with_common_orig(centre_bohr):
        r_r = mol.intor_symmetric("int1e_rr").reshape(3, 3, mol.nao, mol.nao)
    second = -np.einsum("xyij,ji->xy", r_r, density)
    arms = mol.atom_coords() - centre_bohr  # Bohr
    second += np.einsum("a,ax,ay->xy", mol.atom_charges(), arms, arms)
    theta = 0.5 * (3 * second - np.trace(second) * np.eye(3))
    return theta * Bohr**2


def polarizability(mf, centre_bohr: np.ndarray, field: float) -> np.ndarray | None:
    """Static dipole polarizability ``alpha_ij = d mu_i / d F_j`` by central finite fields, ``[3, 3]`` Angstrom^3.

    Six SCFs with a uniform field ``+-field`` (atomic units) along x, y, z added to the
    core Hamiltonian (``-mu . F``, dipole integrals about ``centre_bohr``), each started
    from the field-free density. Symmetrised; None if a field SCF does not converge.
    The error of the central difference is O(field^2): with 0.001 au below 1e-4 relative
    for water (docs/design.md, "Polarizabilities").
    """
    mol = mf.mol
    with mol.with_common_orig(centre_bohr):
        dipole_integrals = mol.intor_symmetric("int1e_r")  # [3, nao, nao], electron position
    hcore, density = mf.get_hcore(), mf.make_rdm1()
    alpha = np.zeros((3, 3))
    for j in range(3):
        dipoles = []
        for sign in (1.0, -1.0):
            field_mf = mf.copy()
            field_mf.conv_tol = min(mf.conv_tol, 1e-11)  # the dipole difference is ~1e-3 of the dipole
            # an electron (charge -1) in the field F has energy +F . r: h = h0 + F_j r_j
            field_mf.get_hcore = lambda *args, h=hcore + sign * field * dipole_integrals[j]: h
            field_mf.kernel(dm0=density)
            if not field_mf.converged:
                return None
            dipoles.append(field_mf.dip_moment(unit="AU", origin=centre_bohr, verbose=0))
        alpha[:, j] = (dipoles[0] - dipoles[1]) / (2 * field)
    return 0.5 * (alpha + alpha.T) * Bohr**3


def charge_and_spin(atoms: Atoms, index: int = 0, source: str | None = None) -> tuple[int, int]:
    """``info["charge"]`` and ``info["spin"]`` (2S, PySCF's convention), both default 0."""
    return tuple(_integer(atoms.info.get(key, 0), key, where(index, source)) for key in ("charge", "spin"))


def check_molecule(atoms: Atoms, index: int = 0, source: str | None = None) -> None:
    """InputError for a periodic structure: the labeller computes isolated molecules only."""
    if atoms.pbc.any():
        raise InputError(f"{where(index, source)}: periodic (pbc={atoms.pbc.tolist()}); equiprop label computes isolated "
                         "molecules (gas-phase PySCF), so its labels would not be those of the cell; set pbc=False "
                         "to label the atoms as one molecule")


def _integer(value, key: str, at: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise InputError(f"{at}: info[{key!r}] = {value!r} is not an integer")
    return int(number)


def check_device(settings: DFTSettings) -> None:
    """SetupError unless ``settings.device`` can run here (a CUDA GPU and gpu4pyscf for "cuda")."""
    if settings.device not in ("cpu", "cuda"):
        raise SetupError(f"device {settings.device!r}: choose cpu or cuda")
    if settings.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SetupError("--device cuda: no CUDA GPU is visible to this process; label on the CPU (--device cpu)")
        require("gpu4pyscf", "gpu")


def on_gpu(mf):
    """The gpu4pyscf version of a PySCF mean-field object (:func:`check_device` first)."""
    return mf.to_gpu()


def compute_labels(atoms: Atoms, settings: DFTSettings, index: int = 0, source: str | None = None) -> DFTLabels | None:
    """Run the SCF and gradients; None if the SCF does not converge (never wrong numbers)."""
    pyscf = require("pyscf", "label")
    from pyscf import dft

    check_device(settings)
    check_molecule(atoms, index, source)
    start = time.perf_counter()
    charge, spin = charge_and_spin(atoms, index, source)
    try:
        mol = pyscf.gto.M(
            atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)],
            basis=settings.basis, unit="Angstrom", charge=charge, spin=spin, verbose=0,
        )
    except RuntimeError as error:  # e.g. electron count and spin do not match
        raise InputError(f"{where(index, source)}: PySCF rejects the structure: {error}") from None
    mf = dft.RKS(mol) if spin == 0 else dft.UKS(mol)
    if settings.density_fit:
        mf = mf.density_fit()
    mf.xc, mf.grids.level, mf.max_cycle = settings.xc, settings.grid_level, settings.max_cycle
    if settings.device == "cuda":
        mf = on_gpu(mf)
    energy = mf.kernel()
    if not mf.converged:
        return None
    gradient = mf.nuc_grad_method().kernel()  # [n_atoms, 3], Hartree/Bohr
    if settings.device == "cuda":  # the density's cheap one-electron properties (dipole, Hirshfeld, quadrupole) on the CPU
        gradient, mf = np.asarray(gradient.get() if hasattr(gradient, "get") else gradient), mf.to_cpu()
    centre = atoms.positions.mean(axis=0) / Bohr
    dipole = mf.dip_moment(unit="AU", origin=centre, verbose=0)  # e*Bohr
    alpha = polarizability(mf, centre, settings.field) if settings.polarizability else None
    if settings.polarizability and alpha is None:
        return None
    return DFTLabels(
        energy=float(energy) * Hartree,
        forces=-np.asarray(gradient) * Hartree / Bohr,
        dipole=np.asarray(dipole) * Bohr,
        charges=hirshfeld_charges(mf, charge, settings),
        seconds=time.perf_counter() - start,
        quadrupole=quadrupole_moment(mf, centre),
        polarizability=alpha,
    )
