"""Reference labels read from ASE frames, checked for type, shape and finiteness."""

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from equiprop.errors import InputError, where
from equiprop.keys import Property


@dataclass(frozen=True)
class LabelKeys:
    """Where each property's reference value lives in a frame.

    Structure labels (energy, dipole) are looked up in ``atoms.info``, per-atom
    labels (charges, forces) in ``atoms.arrays``. A key left at its default
    that is absent falls back, in order, to ``atoms.calc.results[<property>]``
    (ASE's extxyz reader puts ``energy``/``forces``/``dipole``/``charges`` there),
    the bare property name, then ``REF_<property>`` (MACE's convention). A key
    set to anything else must be there: a typo is an error, never another label.
    Defaults follow the FHI-aims/ASE water workflow.
    """

    energy: str = "dft_energy"  # eV
    dipole: str = "dft_dipole"  # e*Angstrom
    dipole_magnitude: str = "dipole_magnitude"  # e*Angstrom
    charges: str = "dft_hirshfeld"  # e
    forces: str = "dft_forces"  # eV/Angstrom
    stress: str = "dft_stress"  # [3, 3] or Voigt [6], eV/Angstrom^3, ASE's sign (cells periodic in x, y, z)
    quadrupole: str = "dft_quadrupole"  # [3, 3] or row-major [9], e*Angstrom^2, traceless (what equiprop label writes)
    polarizability: str = "dft_polarizability"  # [3, 3] or row-major [9], Angstrom^3 (equiprop label --polarizability)

    def key(self, prop: Property) -> str:
        return getattr(self, prop.value)


#: The default key of each property; only these fall back to the alternatives.
DEFAULT_KEYS = {prop: LabelKeys().key(prop) for prop in Property}


def _expected_shape(prop: Property, n_atoms: int) -> tuple[int, ...]:
    return {
        Property.ENERGY: (),
        Property.DIPOLE: (3,),
        Property.DIPOLE_MAGNITUDE: (),
        Property.CHARGES: (n_atoms,),
        Property.FORCES: (n_atoms, 3),
        Property.STRESS: (3, 3),
        Property.QUADRUPOLE: (3, 3),
        Property.POLARIZABILITY: (3, 3),
    }[prop]


def read_label(
    atoms: Atoms, prop: Property, key: str, index: int = 0, source: str | None = None
) -> np.ndarray:
    """The label of ``prop`` stored under ``key`` in one frame, as float64.

    Raises InputError naming the structure and key if the label is missing,
    non-numeric, wrongly shaped or not finite, or a dipole of a periodic structure.
    """
    at = where(index, source)
    if prop in (Property.DIPOLE, Property.DIPOLE_MAGNITUDE, Property.QUADRUPOLE, Property.POLARIZABILITY) and atoms.pbc.any():
        raise InputError(f"{at}: a {prop.value} label {key!r} on a periodic structure: the dipole of a cell "
                         "depends on how its atoms are wrapped, so equiprop learns dipoles of open structures only")
    if prop is Property.STRESS and not atoms.pbc.all():
        raise InputError(f"{at}: a stress target needs cells periodic in x, y and z (pbc={atoms.pbc.tolist()})")
    value, key = _lookup(atoms, prop, key, at)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{at}: label {key!r} is not numeric: {value!r:.60}") from None
    shape = _expected_shape(prop, len(atoms))
    if prop is Property.CHARGES and array.shape == (len(atoms), 1):
        array = array[:, 0]
    if prop is Property.STRESS and array.shape == (6,):  # ASE's Voigt order xx, yy, zz, yz, xz, xy
        array = voigt_6_to_full_3x3_stress(array)
    if prop in (Property.QUADRUPOLE, Property.POLARIZABILITY) and array.shape == (9,):  # a 3x3 in info: 9 numbers
        array = array.reshape(3, 3)
    if array.shape != shape:
        raise InputError(f"{at}: label {key!r} has shape {array.shape}, expected {shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{at}: label {key!r} has non-finite values")
    return array


def _lookup(atoms: Atoms, prop: Property, key: str, at: str) -> tuple[object, str]:
    """The stored value and the name it was found under (configured key first)."""
    per_atom = prop in (Property.CHARGES, Property.FORCES)
    store, place = (atoms.arrays, "arrays") if per_atom else (atoms.info, "info")
    results = getattr(atoms.calc, "results", None) or {}
    if key in store:
        return store[key], key
    if key != DEFAULT_KEYS[prop]:
        raise InputError(f"{at}: no {prop.value} label: key {key!r} is not in atoms.{place}")
    if prop.value in results:
        return results[prop.value], f"calc.results[{prop.value!r}]"
    for alternative in (prop.value, f"REF_{prop.value}"):
        if alternative in store:
            return store[alternative], alternative
    raise InputError(
        f"{at}: no {prop.value} label: key {key!r} is not in atoms.{place} "
        f"(nor calc.results[{prop.value!r}], {prop.value!r} or 'REF_{prop.value}')"
    )


def read_labels(
    frames: Sequence[Atoms],
    targets: Sequence[Property],
    keys: LabelKeys = LabelKeys(),
    source: str | None = None,
    indices=None,
) -> dict[Property, list[np.ndarray]]:
    """Labels of every requested target for every frame (one array per frame); ``indices`` name frames in errors."""
    names = range(len(frames)) if indices is None else [int(k) for k in indices]
    return {
        prop: [read_label(atoms, prop, keys.key(prop), k, source) for k, atoms in zip(names, frames)]
        for prop in targets
    }
