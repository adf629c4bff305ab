"""Geometric sanity checks: is a sampled structure still chemistry worth a DFT label?

A model with holes drives molecular dynamics into geometries that real water
never visits (oxygens 1.5 Angstrom apart, a proton torn off). Such frames say
nothing a simulation needs and only cost DFT time, so exploration stops a
trajectory once its structure leaves these bounds (docs/design.md "Active learning").
"""

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from scipy.spatial.distance import pdist, squareform


@dataclass(frozen=True)
class Guard:
    """Bounds in Angstrom.

    ``min_heavy_distance``: closest approach of two non-hydrogen atoms (O-O in
    water: about 2.4 Angstrom at the shortest in liquid water at 300 K; 2.7-2.9
    in cluster minima). ``max_hydrogen_distance``: every hydrogen within this
    of a heavy atom (the O-H bond is 0.96-1.0; a proton shared in a hydrogen
    bond stays below 1.3 in neutral clusters).
    """

    min_heavy_distance: float = 2.1
    max_hydrogen_distance: float = 1.35

    def problem(self, atoms: Atoms) -> str | None:
        """Why ``atoms`` is out of bounds, or None."""
        heavy = atoms.numbers > 1
        if heavy.sum() >= 2:
            closest = pdist(atoms.positions[heavy]).min()
            if closest < self.min_heavy_distance:
                return f"heavy atoms {closest:.2f} A apart (< {self.min_heavy_distance})"
        if heavy.any() and (~heavy).any():
            distances = squareform(pdist(atoms.positions))[~heavy][:, heavy]
            farthest = distances.min(axis=1).max()
            if farthest > self.max_hydrogen_distance:
                return f"a hydrogen {farthest:.2f} A from the nearest heavy atom (> {self.max_hydrogen_distance})"
        return None


def min_heavy_distance(atoms: Atoms) -> float:
    """Closest distance between two non-hydrogen atoms (inf with fewer than two)."""
    heavy = atoms.positions[atoms.numbers > 1]
    return float(pdist(heavy).min()) if len(heavy) >= 2 else float(np.inf)
