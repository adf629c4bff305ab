"""Counterpoise-corrected PBE0/def2-SVP interaction of the rigid water dimer: how much of the curve is basis-set superposition.

``python bench/dimer_bsse.py data/dimer/pbe0_minimum.xyz [--distances 4.0,5.5,7.0]``: for each O-O
distance (the second molecule moved as in bench/dimer_curve.py), the raw interaction
``E(AB) - E(A) - E(B)`` (each monomer in its own basis, as the labeller and dimer_curve compute it)
and the Boys-Bernardi counterpoise one ``E(AB) - E(A in AB's basis) - E(B in AB's basis)``, the
partner's atoms as PySCF ghosts (basis functions and grid, no nuclei, no electrons). Same settings
as the labeller (DFTSettings: PBE0, def2-SVP, density fitting, grid level 3). Four SCFs per
distance plus two for the monomers, seconds each. docs/benchmarks.md quotes the result (issue 22).
"""

import argparse

import ase.io
import numpy as np
from ase.units import Hartree

from dimer_curve import displaced
from equiprop.labelling.settings import DFTSettings


def energy(symbols: list[str], positions: np.ndarray, settings: DFTSettings) -> float:
    """The labeller's SCF energy (eV) of ``symbols`` (``ghost-X``: basis functions only) at ``positions`` (A)."""
    from pyscf import dft, gto

    mol = gto.M(atom=list(zip(symbols, positions)), basis=settings.basis, unit="Angstrom", verbose=0)
    mf = dft.RKS(mol)
    if settings.density_fit:
        mf = mf.density_fit()
    mf.xc, mf.grids.level, mf.max_cycle = settings.xc, settings.grid_level, settings.max_cycle
    value = mf.kernel()
    if not mf.converged:
        raise SystemExit(f"SCF did not converge for {symbols}")
    return float(value) * Hartree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dimer")
    parser.add_argument("--distances", default="4.0,5.0,5.5,6.0,7.0,10.0")
    parser.add_argument("--first", type=int, default=3)
    args = parser.parse_args()
    settings = DFTSettings()
    dimer = ase.io.read(args.dimer)
    symbols = dimer.get_chemical_symbols()
    first = args.first
    one = energy(symbols[:first], dimer.positions[:first], settings)
    two = energy(symbols[first:], dimer.positions[first:], settings)  # rigid: the same at every distance
    ghost = [f"ghost-{s}" for s in symbols]
    print("r_OO_A,E_int_meV,E_int_counterpoise_meV,bsse_meV")
    for distance in (float(d) for d in args.distances.split(",")):
        moved = displaced(dimer, distance, first)
        whole = energy(symbols, moved.positions, settings)
        one_cp = energy(symbols[:first] + ghost[first:], moved.positions, settings)
        two_cp = energy(ghost[:first] + symbols[first:], moved.positions, settings)
        raw, cp = whole - one - two, whole - one_cp - two_cp
        print(f"{distance:.2f},{1000 * raw:.3f},{1000 * cp:.3f},{1000 * (raw - cp):.3f}", flush=True)


if __name__ == "__main__":
    main()
