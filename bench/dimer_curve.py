"""Interaction energy of a rigid water dimer along the O-O distance: models against the labeller's PBE0.

``python bench/dimer_curve.py DIMER.xyz OUT.csv [--checkpoint best.pt ...] [--dft] [--first 3] [--charges 0,0]``

The second molecule (atoms ``--first`` on; default 3, a water first) is moved rigidly along the
axis from atom 0 to atom ``--first`` (O-O) so that their distance takes each value of
``--distances`` (A); ``--reference OLD.csv`` copies the PBE0 column of an earlier run at the same
distances instead of recomputing it; ``--charges`` are the two molecules' total charges (``info["charge"]``; for
H3O+ then H2O: ``--first 4 --charges 1,0``). ``E_int = E(dimer) - E(first) - E(second)`` for each
model (eV) and, with ``--dft``, for PBE0/def2-SVP by the labeller (1 + 2 SCFs per distance; the
monomers do not change, so they are computed once). ``--second-charge`` adds, for each model, the
charge it puts on the second molecule in the dimer (e; 0 for separated neutral molecules, had the
model no leak). Prints and writes a CSV; issue 22 measures
electrostatics with it (a model without long-range terms gives exactly 0 beyond its cutoff).
"""

import argparse
import csv

import ase.io
import numpy as np


def displaced(dimer, distance: float, first: int = 3):
    moved = dimer.copy()
    axis = moved.positions[first] - moved.positions[0]
    moved.positions[first:] += (distance / np.linalg.norm(axis) - 1.0) * axis
    return moved


def parts(dimer, first: int, charges: tuple[int, int]) -> list:
    """The dimer and its two molecules, each with its total charge in ``info["charge"]``."""
    pieces = [dimer.copy(), dimer[:first], dimer[first:]]
    for piece, charge in zip(pieces, (sum(charges), *charges)):
        piece.info["charge"] = charge
    return pieces


def interaction(energy, dimer, first: int = 3, charges: tuple[int, int] = (0, 0)) -> float:
    whole, one, two = parts(dimer, first, charges)
    return energy(whole) - energy(one) - energy(two)


def second_charge(calculator, dimer, first: int, charges: tuple[int, int]) -> float:
    """The model's total charge (e) on atoms ``first:`` of the dimer (the CSV, x1000 like the energies, writes me)."""
    whole = parts(dimer, first, charges)[0]
    whole.calc = calculator
    return float(whole.get_charges()[first:].sum())


def reference_column(path: str, distances: list[float]) -> list[float]:
    """The PBE0 interaction energies (eV) of an earlier CSV of this script, at exactly ``distances``."""
    rows = list(csv.reader(open(path)))
    column = rows[0].index("E_int_meV[PBE0/def2-SVP]")
    found = {round(float(row[0]), 4): float(row[column]) / 1000 for row in rows[1:]}
    missing = [d for d in distances if round(d, 4) not in found]
    if missing:
        raise SystemExit(f"{path}: no PBE0 value at {missing}")
    return [found[round(d, 4)] for d in distances]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dimer")
    parser.add_argument("out")
    parser.add_argument("--checkpoint", action="append", default=[])
    parser.add_argument("--dft", action="store_true")
    parser.add_argument("--reference", help="an earlier OUT.csv whose PBE0 column (same distances) to copy")
    parser.add_argument("--distances", default="2.9,3.2,3.6,4.0,4.5,5.0,5.5,6.0,7.0,8.0,10.0")
    parser.add_argument("--first", type=int, default=3, help="atoms of the first molecule")
    parser.add_argument("--charges", default="0,0", help="total charges of the two molecules")
    parser.add_argument("--float64", action="store_true",
                        help="evaluate the models in float64: float32 totals of ~4000 eV round the difference to ~0.2 meV")
    parser.add_argument("--second-charge", action="store_true", help="also each model's charge on the second molecule")
    args = parser.parse_args()
    first = args.first
    charges = tuple(int(q) for q in args.charges.split(","))
    dimer = ase.io.read(args.dimer)
    distances = [float(d) for d in args.distances.split(",")]
    columns = {}
    for path in args.checkpoint:
        from equiprop import EquipropCalculator
        from equiprop.models.checkpoint import load_model

        model = load_model(path)
        calculator = EquipropCalculator(model.double() if args.float64 else model)

        def energy(atoms, calculator=calculator):
            atoms = atoms.copy()
            atoms.calc = calculator
            return atoms.get_potential_energy()

        columns[path] = [interaction(energy, displaced(dimer, d, first), first, charges) for d in distances]
        if args.second_charge:
            columns[f"q_second_me[{path}]"] = [second_charge(calculator, displaced(dimer, d, first), first, charges)
                                            for d in distances]
    if args.dft:
        from equiprop.labelling.pyscf_labels import compute_labels
        from equiprop.labelling.settings import DFTSettings

        def dft(atoms):
            return compute_labels(atoms, DFTSettings()).energy

        monomers = sum(dft(piece) for piece in parts(dimer, first, charges)[1:])  # rigid: computed once
        columns["PBE0/def2-SVP"] = [dft(parts(displaced(dimer, d, first), first, charges)[0]) - monomers
                                    for d in distances]
    if args.reference:
        columns["PBE0/def2-SVP"] = reference_column(args.reference, distances)
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["r_OO"] + [name if name.startswith("q_second_me[") else f"E_int_meV[{name}]"
                                    for name in columns])
        for k, d in enumerate(distances):
            row = [d] + [1000 * values[k] for values in columns.values()]
            writer.writerow([f"{v:.4f}" for v in row])
            print("  ".join(f"{v:9.3f}" for v in row))


if __name__ == "__main__":
    main()
