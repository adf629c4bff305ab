"""Settings of a PySCF labelling run (one dataclass, mirrored by ``equiprop label`` flags)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class DFTSettings:
    """Level of theory and numerics; the defaults reproduce the shipped water data."""

    xc: str = "pbe0"
    basis: str = "def2-svp"
    density_fit: bool = True  # PySCF's default auxiliary basis
    grid_level: int = 3  # molecular SCF grid (and Hirshfeld integration)
    free_atom_grid_level: int = 4  # free-atom SCF for the Hirshfeld promolecule
    max_cycle: int = 100
    device: str = "cpu"  # "cuda": SCF and gradients through gpu4pyscf (pip install 'equiprop[gpu]')
    polarizability: bool = False  # also the static dipole polarizability by finite fields (6 more SCFs)
    field: float = 0.001  # atomic units (5.1e8 V/m): the finite field's strength (central differences)

    def describe(self) -> str:
        fit = ", density fitting" if self.density_fit else ""
        gpu = ", gpu4pyscf" if self.device == "cuda" else ""
        return f"{self.xc}/{self.basis} (PySCF{fit}{gpu})"
