"""Which multipoles carry the water dimer's interaction beyond the cutoff: PBE0's own, no model.

``python bench/dimer_multipoles.py data/dimer/pbe0_minimum.xyz data/dimer/curve_round4_committee.csv``

Labels each monomer of the dimer once with the labeller (PBE0/def2-SVP: Hirshfeld charges,
dipole, quadrupole about the geometric centre), moves the second one rigidly along the O-O
axis as ``bench/dimer_curve.py`` does, and prints the electrostatic interaction (meV) of
- the Hirshfeld charges on the atoms;
- three charges fitted to each monomer's dipole (PhysNet's choice; q_O = -2 q_H);
- each monomer's dipole at its centre;
- its dipole and quadrupole at its centre;
beside PBE0's interaction energy from the CSV's last column (``E_int_meV[PBE0/def2-SVP]``).
Point multipoles: the damped sum of ``equiprop.nn.electrostatics`` with a 0.01 A width.
Issue 22 chose the electrostatic model from this (docs/design.md, "Electrostatics").
"""

import argparse
import csv

import ase.io
import numpy as np
import torch

from dimer_curve import displaced  # the same rigid move along the O-O axis
from equiprop.labelling.pyscf_labels import compute_labels
from equiprop.labelling.settings import DFTSettings
from equiprop.nn.electrostatics import DampedMultipoles


def interaction(sites, charges, dipoles=None, quadrupoles=None) -> float:
    """Electrostatic energy (meV) between the first and second halves of ``sites``."""
    point = DampedMultipoles(sigma=0.01)
    t = lambda a: None if a is None else torch.as_tensor(np.asarray(a), dtype=torch.float64)
    half = len(sites) // 2

    def energy(part):
        return float(point(t(charges)[part], t(sites)[part], torch.zeros(len(sites[part]), dtype=torch.long), 1,
                           None if dipoles is None else t(dipoles)[part],
                           None if quadrupoles is None else t(quadrupoles)[part]))

    return 1000 * (energy(slice(None)) - energy(slice(0, half)) - energy(slice(half, None)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dimer")
    parser.add_argument("reference_csv")
    args = parser.parse_args()
    dimer = ase.io.read(args.dimer)
    with open(args.reference_csv) as handle:
        rows = list(csv.reader(handle))[1:]
    reference = {float(row[0]): float(row[-1]) for row in rows}
    labels = [compute_labels(dimer[part], DFTSettings()) for part in (slice(0, 3), slice(3, 6))]
    hirshfeld = np.concatenate([label.charges for label in labels])
    print("r_OO  PBE0  hirshfeld  dipole-fitted-charges  dipoles  dipoles+quadrupoles  (meV)")
    for distance in sorted(reference):
        atoms = displaced(dimer, distance)
        positions = atoms.positions
        fitted = []
        for label, part in zip(labels, (slice(0, 3), slice(3, 6))):
            o, h1, h2 = positions[part]
            bisector = (h1 - o) + (h2 - o)  # q_H (r_H1 + r_H2 - 2 r_O) is the charges' dipole
            q_h = float(label.dipole @ bisector) / float(bisector @ bisector)
            fitted += [-2 * q_h, q_h, q_h]
        centres = np.array([positions[:3].mean(0), positions[3:].mean(0)])
        dipoles = np.array([label.dipole for label in labels])
        quadrupoles = np.array([label.quadrupole for label in labels])
        print(f"{distance:5.1f} {reference[distance]:8.2f} {interaction(positions, hirshfeld):8.2f} "
              f"{interaction(positions, fitted):8.2f} {interaction(centres, np.zeros(2), dipoles):8.2f} "
              f"{interaction(centres, np.zeros(2), dipoles, quadrupoles):8.2f}")


if __name__ == "__main__":
    main()
