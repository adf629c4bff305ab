"""Data shipped with equiprop.

:func:`water_pbe0`: 400 water clusters (2-9 molecules) labelled with PBE0/def2-SVP
(PySCF): ``info["dft_energy"]`` (eV), ``info["dft_dipole"]`` (e*Angstrom),
``arrays["dft_hirshfeld"]`` (e), ``arrays["dft_forces"]`` (eV/Angstrom). See
``README.md`` next to this file for provenance.

:func:`qm9`: QM9 (130,831 molecules, B3LYP) from the optional ``qm9pack``
package (``pip install 'equiprop[qm9]'``); keys and units in
:mod:`equiprop.datasets.qm9_conversion`.
"""

from importlib import resources

from ase import Atoms

from equiprop.data.io import read_structures
from equiprop.datasets.qm9_conversion import qm9

WATER_PBE0_FILE = "water_clusters_pbe0.xyz.gz"


def water_pbe0_path():
    """Path of the shipped water-cluster file (``.xyz.gz``, readable by ``ase.io.read``)."""
    return resources.files(__name__) / WATER_PBE0_FILE


def water_pbe0() -> list[Atoms]:
    """The shipped PBE0 water clusters as a list of ``ase.Atoms`` (fresh copies on each call)."""
    return read_structures(water_pbe0_path())


__all__ = ["qm9", "water_pbe0", "water_pbe0_path"]
