"""The labeller as an ASE calculator: PBE0/def2-SVP (or any DFTSettings) energy, forces and dipole
(and the polarizability, ``[3, 3]`` Angstrom^3, with ``DFTSettings(polarizability=True)``).

For what ASE drives with a calculator: optimisation and finite-difference
vibrations of the DFT reference (``equiprop spectrum harmonic --dft-reference``).
A failed SCF raises, never returns numbers.
"""

from ase.calculators.calculator import Calculator, all_changes

from equiprop.errors import InputError
from equiprop.labelling.pyscf_labels import compute_labels
from equiprop.labelling.settings import DFTSettings


class DFTCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "dipole", "charges", "polarizability"]

    def __init__(self, settings: DFTSettings = DFTSettings(), **kwargs):
        super().__init__(**kwargs)
        self.settings = settings
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        labels = compute_labels(self.atoms, self.settings)
        if labels is None:
            raise InputError(f"the {self.settings.describe()} SCF did not converge for this geometry")
        self.calls += 1
        self.results = {"energy": labels.energy, "free_energy": labels.energy, "forces": labels.forces,
                        "dipole": labels.dipole, "charges": labels.charges}
        if labels.polarizability is not None:
            self.results["polarizability"] = labels.polarizability
