"""Hirshfeld charges from spherically averaged free-atom densities.

Recipe (documented with the shipped data): each element's free atom is
computed with unrestricted Kohn-Sham at the molecule's level of theory in its
ground-state spin (H doublet, O triplet, ...); its density is averaged over 110
Lebedev directions on a logarithmic radial grid. The molecular density is
integrated on the SCF grid with weights ``w_A = rho_A / sum_B rho_B``;
``q_A = Z_A - N_A``, and the small integration residual is spread evenly so
the charges sum to the total charge.
"""

from functools import lru_cache

import numpy as np

from equiprop.labelling.settings import DFTSettings

#: Radial grid (Bohr) of the tabulated free-atom densities.
RADII = np.geomspace(1e-6, 30.0, 600)
#: Ground-state multiplicity - 1 (number of unpaired electrons) of free atoms.
FREE_ATOM_SPIN = {"H": 1, "He": 0, "Li": 1, "Be": 0, "B": 1, "C": 2, "N": 3, "O": 2, "F": 1, "Ne": 0,
                  "Na": 1, "Mg": 0, "Al": 1, "Si": 2, "P": 3, "S": 2, "Cl": 1, "Ar": 0}


@lru_cache(maxsize=None)
def free_atom_density(symbol: str, settings: DFTSettings) -> np.ndarray:
    """Spherically averaged density of the free atom on :data:`RADII`, ``[n_radii]`` (e/Bohr^3)."""
    from pyscf import dft, gto
    from pyscf.dft import LebedevGrid

    if symbol not in FREE_ATOM_SPIN:
        raise ValueError(f"no free-atom spin known for element {symbol!r}")
    mol = gto.M(atom=[(symbol, (0.0, 0.0, 0.0))], basis=settings.basis, spin=FREE_ATOM_SPIN[symbol], verbose=0)
    mf = dft.UKS(mol)
    if settings.density_fit:
        mf = mf.density_fit()
    mf.xc, mf.grids.level, mf.max_cycle = settings.xc, settings.free_atom_grid_level, settings.max_cycle
    mf.kernel()
    if not mf.converged:
        raise RuntimeError(f"free-atom SCF for {symbol} did not converge")
    directions = LebedevGrid.MakeAngularGrid(110)[:, :3]  # [110, 3] unit vectors
    points = (RADII[:, None, None] * directions[None]).reshape(-1, 3)
    dm = mf.make_rdm1()
    ao = dft.numint.eval_ao(mol, points)
    rho = dft.numint.eval_rho(mol, ao, dm[0] + dm[1])
    return rho.reshape(len(RADII), len(directions)).mean(axis=1)


def hirshfeld_charges(mf, total_charge: float, settings: DFTSettings) -> np.ndarray:
    """Hirshfeld charges ``[n_atoms]`` (e) of a converged PySCF mean-field object."""
    from pyscf import dft

    mol = mf.mol
    coords, weights = mf.grids.coords, mf.grids.weights  # [n_grid, 3], [n_grid] (Bohr)
    dm = mf.make_rdm1()
    if dm.ndim == 3:  # unrestricted: alpha + beta
        dm = dm[0] + dm[1]
    free = [free_atom_density(mol.atom_symbol(a), settings) for a in range(mol.natm)]
    populations = np.zeros(mol.natm)
    for start in range(0, len(weights), 20000):
        chunk = slice(start, start + 20000)
        rho = dft.numint.eval_rho(mol, dft.numint.eval_ao(mol, coords[chunk]), dm)  # [n_chunk]
        distances = np.linalg.norm(coords[chunk, None] - mol.atom_coords()[None], axis=-1)  # [n_chunk, n_atoms]
        pro = np.stack([np.interp(distances[:, a], RADII, free[a], right=0.0) for a in range(mol.natm)], axis=1)
        share = pro / np.maximum(pro.sum(axis=1, keepdims=True), 1e-300)
        populations += (weights[chunk] * rho) @ share
    charges = mol.atom_charges() - populations
    return charges - (charges.sum() - total_charge) / mol.natm
