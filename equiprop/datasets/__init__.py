"""Data shipped with equiprop.

:func:`water_pbe0`: 400 water clusters (2-9 molecules) labelled with PBE0/def2-SVP
(PySCF): ``info["dft_energy"]`` (eV), ``info["dft_dipole"]`` (e*Angstrom),
``arrays["dft_hirshfeld"]`` (e), ``arrays["dft_forces"]`` (eV/Angstrom). See
``README.md`` next to this file for provenance.
"""

from importlib import resources

from ase import Atoms

from equiprop.data.io import read_structures

WATER_PBE0_FILE = "water_clusters_pbe0.xyz.gz"


def water_pbe0_path():
    """Path of the shipped water-cluster file (``.xyz.gz``, readable by ``ase.io.read``)."""
    return resources.files(__name__) / WATER_PBE0_FILE


def water_pbe0() -> list[Atoms]:
    """The shipped PBE0 water clusters as a list of ``ase.Atoms`` (fresh copies on each call)."""
    return read_structures(water_pbe0_path())


__all__ = ["water_pbe0", "water_pbe0_path"]
