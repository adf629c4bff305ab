"""Symmetry check of a trained model: random rotations, translations and permutations."""

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

from equiprop.keys import is_per_atom
from equiprop.models.predict import predict


def transformed(atoms: Atoms, rng: np.random.Generator) -> tuple[Atoms, np.ndarray, np.ndarray]:
    """A rotated, translated and permuted copy; returns it, the rotation matrix and the permutation."""
    rotation = Rotation.random(random_state=rng).as_matrix()
    perm = rng.permutation(len(atoms))
    new = atoms[perm]
    new.positions = new.positions @ rotation.T + rng.uniform(-10, 10, 3)
    new.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return new, rotation, perm


def symmetry_deviations(model, frames, n_transforms: int = 3, seed: int = 0) -> dict[str, float]:
    """Largest deviation per output, relative to ``max(1, largest |value|)`` of the reference.

    Invariants (energy, charges) must not change; vectors (dipole, forces) must
    rotate with the structure; per-atom outputs must follow the permutation.
    """
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
                scale = max(1.0, float(np.abs(expected).max(initial=0)))
                deviation = float(np.abs(out[key][k] - expected).max(initial=0)) / scale
                worst[key] = max(worst.get(key, 0.0), deviation)
    return worst
