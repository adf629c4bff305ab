"""Data shipped with equiprop.

:func:`water_pbe0`: 400 water clusters (2-9 molecules) labelled with PBE0/def2-SVP
(PySCF): ``info["dft_energy"]`` (eV), ``info["dft_dipole"]`` (e*Angstrom),
``arrays["dft_hirshfeld"]`` (e), ``arrays["dft_forces"]`` (eV/Angstrom), rigid
molecules placed at random. See ``README.md`` next to this file for provenance.

:func:`water_pbe0_sampled`: clusters of 2-12 molecules that simulations visit,
found by ``equiprop learn`` (MD frames at 200-400 K and model minima the
committee was unsure of), the same method and keys plus ``info["dft_quadrupole"]``
and ``info["sample"]`` (``md`` or ``minimum``). Provenance in ``README.md``.

:func:`water` is both, the data ``equiprop train`` uses without ``--data``.

:func:`water_pbe0_ions`: 150 protonated (H3O+ with 1-8 waters, ``info["charge"] = 1``)
and 150 deprotonated (OH- with 1-8 waters, ``info["charge"] = -1``) random placements,
the same method and keys (Hirshfeld charges sum to the total charge), ``info["ion"]``
(``H3O+`` or ``OH-``). ``equiprop train --data water+ions`` trains on :func:`water_with_ions`.

:func:`qm9`: QM9 (130,831 molecules, B3LYP) from the optional ``qm9pack``
package (``pip install 'equiprop[qm9]'``); keys and units in
:mod:`equiprop.datasets.qm9_conversion`.
"""

from importlib import resources

from ase import Atoms

from equiprop.data.io import read_structures
from equiprop.datasets.qm9_conversion import qm9

WATER_PBE0_FILE = "water_clusters_pbe0.xyz.gz"
WATER_SAMPLED_FILE = "water_sampled_pbe0.xyz.gz"
WATER_IONS_FILE = "water_ions_pbe0.xyz.gz"


def water_pbe0_path():
    """Path of the shipped random water-cluster file (``.xyz.gz``, readable by ``ase.io.read``)."""
    return resources.files(__name__) / WATER_PBE0_FILE


def water_pbe0_sampled_path():
    """Path of the shipped sampled water-cluster file (``.xyz.gz``)."""
    return resources.files(__name__) / WATER_SAMPLED_FILE


def water_pbe0_ions_path():
    """Path of the shipped charged water-cluster file (H3O+ and OH- with 1-8 waters, ``.xyz.gz``)."""
    return resources.files(__name__) / WATER_IONS_FILE


def water_pbe0() -> list[Atoms]:
    """The shipped random PBE0 water clusters as a list of ``ase.Atoms`` (fresh copies on each call)."""
    return read_structures(water_pbe0_path())


def water_pbe0_sampled() -> list[Atoms]:
    """The shipped sampled PBE0 water clusters (MD frames and minima from ``equiprop learn``), fresh copies."""
    return read_structures(water_pbe0_sampled_path())


def water_pbe0_ions() -> list[Atoms]:
    """The shipped charged PBE0 water clusters: 150 H3O+ then 150 OH- clusters, fresh copies."""
    return read_structures(water_pbe0_ions_path())


def water() -> list[Atoms]:
    """Both shipped water sets, random clusters first: what ``equiprop train`` reads without ``--data``."""
    return water_pbe0() + water_pbe0_sampled()


def water_with_ions() -> list[Atoms]:
    """The neutral sets of :func:`water` and then the charged clusters: ``equiprop train --data water+ions``."""
    return water() + water_pbe0_ions()


#: How messages name the default data.
WATER_NAME = f"{WATER_PBE0_FILE} + {WATER_SAMPLED_FILE} (equiprop.datasets.water)"
#: How messages name ``--data water+ions``.
WATER_IONS_NAME = f"{WATER_PBE0_FILE} + {WATER_SAMPLED_FILE} + {WATER_IONS_FILE} (equiprop.datasets.water_with_ions)"

__all__ = [
    "qm9",
    "water",
    "water_pbe0",
    "water_pbe0_ions",
    "water_pbe0_ions_path",
    "water_pbe0_path",
    "water_pbe0_sampled",
    "water_pbe0_sampled_path",
    "water_with_ions",
]
