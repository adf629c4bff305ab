"""Interaction energy of a rigid water dimer along the O-O distance: models against the labeller's PBE0.

``python bench/dimer_curve.py DIMER.xyz OUT.csv [--checkpoint best.pt ...] [--dft]``

The second molecule (atoms 3-5) is moved rigidly along the O-O axis so that the O-O distance
takes each value of ``--distances`` (A); ``E_int = E(dimer) - E(first) - E(second)`` for each
model (eV) and, with ``--dft``, for PBE0/def2-SVP by the labeller (1 + 2 SCFs per distance; the
monomers do not change, so they are computed once). Prints and writes a CSV; issue 22 measures
electrostatics with it (a model without long-range terms gives exactly 0 beyond its cutoff).
"""

import argparse
import csv

import ase.io
import numpy as np


def displaced(dimer, distance: float):
    moved = dimer.copy()
    axis = moved.positions[3] - moved.positions[0]
    moved.positions[3:] += (distance / np.linalg.norm(axis) - 1.0) * axis
    return moved


def interaction(energy, dimer) -> float:
    return energy(dimer) - energy(dimer[:3]) - energy(dimer[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dimer")
    parser.add_argument("out")
    parser.add_argument("--checkpoint", action="append", default=[])
    parser.add_argument("--dft", action="store_true")
    parser.add_argument("--distances", default="2.9,3.2,3.6,4.0,4.5,5.0,5.5,6.0,7.0,8.0,10.0")
    args = parser.parse_args()
    dimer = ase.io.read(args.dimer)
    distances = [float(d) for d in args.distances.split(",")]
    columns = {}
    for path in args.checkpoint:
        from equiprop import EquipropCalculator

        calculator = EquipropCalculator(path)

        def energy(atoms, calculator=calculator):
            atoms = atoms.copy()
            atoms.calc = calculator
            return atoms.get_potential_energy()

        columns[path] = [interaction(energy, displaced(dimer, d)) for d in distances]
    if args.dft:
        from equiprop.labelling.pyscf_labels import compute_labels
        from equiprop.labelling.settings import DFTSettings

        monomers = sum(compute_labels(dimer[part], DFTSettings()).energy for part in (slice(0, 3), slice(3, 6)))
        columns["PBE0/def2-SVP"] = [compute_labels(displaced(dimer, d), DFTSettings()).energy - monomers for d in distances]
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["r_OO"] + [f"E_int_meV[{name}]" for name in columns])
        for k, d in enumerate(distances):
            row = [d] + [1000 * values[k] for values in columns.values()]
            writer.writerow([f"{v:.4f}" for v in row])
            print("  ".join(f"{v:9.3f}" for v in row))


if __name__ == "__main__":
    main()
