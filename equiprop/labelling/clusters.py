"""Random molecular clusters for new reference data (the recipe of the shipped water set)."""

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import molecule
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class ClusterRecipe:
    """How clusters are built (Angstrom). Defaults reproduce the shipped water clusters.

    Molecules (rigid ASE geometries) are placed one by one at random positions
    and orientations inside a sphere of radius ``radius_per_molecule *
    n^(1/3) + radius_offset``. The anchor atom of each molecule (its heaviest
    atom: O in water) keeps at least ``min_anchor_distance`` from other
    anchors and lies within ``contact_distance`` of at least one, so the
    cluster is connected at hydrogen-bond distance. Atoms of different molecules
    stay at least ``min_atom_distance`` apart (no overlaps). Finally every atom
    moves by Gaussian noise of width ``noise`` so bonds and angles vary.
    """

    radius_per_molecule: float = 1.6
    radius_offset: float = 0.8
    min_anchor_distance: float = 2.7
    contact_distance: float = 3.3
    min_atom_distance: float = 1.4
    noise: float = 0.04
    max_tries: int = 10000


def make_cluster(name: str, n_molecules: int, rng: np.random.Generator, recipe: ClusterRecipe = ClusterRecipe()) -> Atoms:
    """One cluster of ``n_molecules`` copies of ASE's ``molecule(name)``."""
    template = molecule(name)
    anchor = int(np.argmax(template.get_masses()))
    template.positions -= template.positions[anchor]
    radius = recipe.radius_per_molecule * n_molecules ** (1 / 3) + recipe.radius_offset
    placed: list[np.ndarray] = []
    for _ in range(recipe.max_tries):
        if len(placed) == n_molecules:
            break
        centre = _random_in_sphere(rng, radius)
        positions = Rotation.random(random_state=rng).apply(template.positions) + centre
        if _fits(positions, anchor, placed, recipe):
            placed.append(positions)
    else:
        raise RuntimeError(f"could not place {n_molecules} x {name} in {recipe.max_tries} tries; loosen the recipe")
    cluster = Atoms(template.get_chemical_symbols() * n_molecules, positions=np.concatenate(placed))
    cluster.positions += rng.normal(scale=recipe.noise, size=cluster.positions.shape)
    return cluster


def make_clusters(name: str, sizes: list[int], count: int, seed: int = 0, recipe: ClusterRecipe = ClusterRecipe()) -> list[Atoms]:
    """``count`` clusters whose sizes cycle through ``sizes`` (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    return [make_cluster(name, sizes[k % len(sizes)], rng, recipe) for k in range(count)]


def _random_in_sphere(rng: np.random.Generator, radius: float) -> np.ndarray:
    while True:
        point = rng.uniform(-radius, radius, 3)
        if point @ point <= radius**2:
            return point


def _fits(positions: np.ndarray, anchor: int, placed: list[np.ndarray], recipe: ClusterRecipe) -> bool:
    if not placed:
        return True
    others = np.stack([p[anchor] for p in placed])
    anchor_gaps = np.linalg.norm(others - positions[anchor], axis=1)
    atom_gaps = np.linalg.norm(np.concatenate(placed)[:, None] - positions[None], axis=-1)
    return (
        anchor_gaps.min() >= recipe.min_anchor_distance
        and anchor_gaps.min() <= recipe.contact_distance
        and atom_gaps.min() >= recipe.min_atom_distance
    )
