"""What the periodic Ewald sums cost: energy and forces of 64 rigid waters in a 12.4 A box, per electrostatics kind.

``python bench/ewald_cost.py [--threads 2]``: the default SO3Net size (lmax 2, 32 features, 3 interactions,
4 A cutoff), untrained, through ``EquipropCalculator``; mean of 3 calls after one warm-up. docs/performance.md.
"""

import argparse
import time

import numpy as np
import torch
from ase import Atoms
from ase.build import molecule

import equiprop


def water_box(per_side: int = 4, length: float = 12.4, seed: int = 0) -> Atoms:
    """``per_side**3`` rigid waters on a grid, jittered by 0.05 A, in a cubic periodic cell."""
    rng = np.random.default_rng(seed)
    water = molecule("H2O")
    positions = [water.positions + (np.array(ijk) + 0.5) * length / per_side + rng.normal(scale=0.05, size=(3, 3))
                 for ijk in np.ndindex(per_side, per_side, per_side)]
    return Atoms("OH2" * per_side**3, positions=np.concatenate(positions), cell=[length] * 3, pbc=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    box = water_box()
    kinds = {"none": ["charges", "dipole", "energy"], "coulomb": ["charges", "dipole", "energy"],
             "multipole": ["charges", "dipole", "energy", "quadrupole"]}
    for kind, targets in kinds.items():
        torch.manual_seed(0)
        model = equiprop.SO3Net(elements=["H", "O"], cutoff=4.0, lmax=2, features=32, interactions=3,
                                targets=targets, electrostatics=kind)
        atoms = box.copy()
        atoms.calc = equiprop.EquipropCalculator(model)
        atoms.get_forces()
        start = time.perf_counter()
        for _ in range(3):
            atoms.positions += 0.001
            atoms.get_forces()
        print(f"{kind:10s} {(time.perf_counter() - start) / 3:.3f} s per energy and forces, {len(atoms)} atoms")


if __name__ == "__main__":
    main()
