"""Symmetry check of a trained model: random rotations, translations and permutations.

Deviations are absolute, in each output's own unit, so one tolerance means the
same thing for every structure size: energies per atom (eV/atom), forces
(eV/Angstrom), charges (e), dipoles (e*Angstrom). Energies are compared without
the element reference energies: those are the same sum for every copy of a
structure, and in float32 a total of 10^4 eV resolves only ~1 meV, which would
hide a violation of the size of the model's error.
"""

import copy

import numpy as np
import torch
from ase import Atoms
from scipy.spatial.transform import Rotation

from equiprop.keys import is_per_atom
from equiprop.models.predict import predict

#: Unit of each checked output's deviation (a committee's ``<name>_std`` share its output's).
UNITS = {"energy": "eV/atom", "forces": "eV/A", "charges": "e", "dipole": "e*A", "dipole_magnitude": "e*A",
         "quadrupole": "e*A^2", "polarizability": "A^3"}

#: Default absolute tolerance per precision (in the units of ``UNITS``): float32 rounding
#: stays near 1e-6 for water clusters; a violation of 0.1 meV/atom is far below any model's error.
DEFAULT_TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9}


def unit(key: str) -> str:
    """The unit of ``key``'s deviation (``energy_std`` as ``energy``)."""
    return UNITS.get(key.removesuffix("_std"), "")


def transformed(atoms: Atoms, rng: np.random.Generator) -> tuple[Atoms, np.ndarray, np.ndarray]:
    """A rotated, translated and permuted copy; returns it, the rotation matrix and the permutation."""
    rotation = Rotation.random(random_state=rng).as_matrix()
    perm = rng.permutation(len(atoms))
    new = atoms[perm]
    new.positions = new.positions @ rotation.T + rng.uniform(-10, 10, 3)
    new.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return new, rotation, perm


def without_energy_references(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` (or of every committee member) whose element and charge reference energies are zero."""
    bare = copy.deepcopy(model)
    with torch.no_grad():
        for module in bare.modules():
            for name in ("element_energies", "charge_energies"):
                references = getattr(module, name, None)
                if isinstance(references, torch.Tensor):
                    references.zero_()
    return bare


def symmetry_deviations(model, frames, n_transforms: int = 3, seed: int = 0) -> dict[str, float]:
    """Largest absolute deviation per output, in the units of :data:`UNITS`.

    Invariants (energy, charges) must not change; vectors (dipole, forces) must
    rotate with the structure; per-atom outputs must follow the permutation.
    Energies (and their committee spread) are divided by the number of atoms.
    """
    model = without_energy_references(model)
    rng = np.random.default_rng(seed)
    reference = predict(model, frames)
    worst: dict[str, float] = {}
    for _ in range(n_transforms):
        moved, rotations, perms = zip(*(transformed(a, rng) for a in frames))
        out = predict(model, list(moved))
        for key, ref_values in reference.items():
            for k, ref in enumerate(ref_values):
                expected = ref[perms[k]] if is_per_atom(key) else ref  # a committee's spreads: permuted invariants
                expected = expected @ rotations[k].T if key in ("dipole", "forces") else expected
                expected = rotations[k] @ expected @ rotations[k].T if key in ("quadrupole", "polarizability") else expected
                deviation = float(np.abs(np.asarray(out[key][k], np.float64) - expected).max(initial=0))
                if key.removesuffix("_std") == "energy":
                    deviation /= len(frames[k])
                worst[key] = max(worst.get(key, 0.0), deviation)
    return worst
