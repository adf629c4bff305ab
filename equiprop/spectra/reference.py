"""Harmonic IR (and Raman) of any ASE calculator by central finite differences: the DFT reference.

``ase.vibrations.Infrared`` displaces each atom by +-``delta`` along x, y, z and
caches forces and dipoles per displacement (so a rerun resumes). For Raman the
same displacements also cache the calculator's ``polarizability`` (``[3, 3]``,
Angstrom^3), and the activities follow from ``d alpha / d x`` exactly as the
autograd path computes them (``harmonic.raman_activities``), so the two compare.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.vibrations import Infrared

from equiprop.spectra.harmonic import raman_activities


class _PolarizableInfrared(Infrared):
    """``Infrared`` whose cache also holds each displacement's polarizability."""

    def calculate(self, atoms, disp):
        results = super().calculate(atoms, disp)
        results["polarizability"] = np.asarray(self.calc.get_property("polarizability", atoms)).reshape(3, 3)
        return results


@dataclass
class FiniteDifferenceHarmonic:
    """Vibrations of a finite-difference analysis, ascending (``n = 3 * n_atoms`` modes)."""

    frequencies: np.ndarray  # [n], cm^-1, imaginary modes as 0 (ASE's .real)
    intensities: np.ndarray  # [n], (D/Angstrom)^2/amu
    raman_activities: np.ndarray | None  # [n], Angstrom^4/amu, 45 a'^2 + 7 g'^2 (None: not asked)


def finite_difference_harmonic(atoms: Atoms, folder: Path, raman: bool = False, delta: float = 0.01
                               ) -> FiniteDifferenceHarmonic:
    """Harmonic analysis of ``atoms`` (with its calculator attached) by 6N + 1 calculations cached in ``folder``.

    With ``raman`` the calculator must give ``polarizability``; its cache is a separate
    one (``displacements-raman``), since a cache without polarizabilities cannot serve it.
    """
    kind = _PolarizableInfrared if raman else Infrared
    name = "displacements-raman" if raman else "displacements"
    infrared = kind(atoms, name=str(Path(folder) / name), delta=delta, nfree=2)
    infrared.run()  # each displacement cached as it finishes
    frequencies = infrared.get_frequencies().real  # computes the modes (infrared.modes, rows) too
    activities = None
    if raman:
        alphas = {(d.a, d.i, d.sign): infrared.cache[d.name]["polarizability"]
                  for d in infrared.displacements() if d.sign != 0}
        d_alpha_d_x = np.array([alphas[a, i, 1] - alphas[a, i, -1] for a in infrared.indices
                                for i in range(3)]) / (2 * delta)  # [3N, 3, 3], Angstrom^2, ASE's row order
        mass_weighted = infrared.im[None, :] * infrared.modes  # [modes, 3N], amu^-1/2
        activities = raman_activities(np.einsum("mk,kab->mab", mass_weighted, d_alpha_d_x))
    return FiniteDifferenceHarmonic(frequencies, np.asarray(infrared.intensities), activities)
