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


#: Ions a cluster can hold (``make-clusters --ion``): geometry (O first, Angstrom) and charge (e).
#: H3O+: O-H 0.98 A, pyramidal (H-O-H 112 degrees); OH-: O-H 0.97 A.
IONS = {
    "H3O+": (Atoms("OH3", positions=[[0, 0, 0.0], [0.9240, 0, 0.3266], [-0.4620, 0.8002, 0.3266],
                                     [-0.4620, -0.8002, 0.3266]]), 1),
    "OH-": (Atoms("OH", positions=[[0, 0, 0], [0, 0, 0.97]]), -1),
}


def make_cluster(name: str, n_molecules: int, rng: np.random.Generator, recipe: ClusterRecipe = ClusterRecipe(),
                 ion: str | None = None) -> Atoms:
    """One cluster of ``n_molecules`` copies of ASE's ``molecule(name)``, after one ``ion`` (a key of
    :data:`IONS`; ``info["charge"]`` set) if given: ``ion`` plus ``n_molecules`` molecules."""
    templates = [_anchored(molecule(name))] * n_molecules
    charge = 0
    if ion is not None:
        if ion not in IONS:
            raise ValueError(f"unknown ion {ion!r}; known: {', '.join(IONS)}")
        templates = [_anchored(IONS[ion][0].copy())] + templates
        charge = IONS[ion][1]
    radius = recipe.radius_per_molecule * len(templates) ** (1 / 3) + recipe.radius_offset
    placed: list[np.ndarray] = []  # positions of each placed molecule, its anchor (heaviest atom) first
    for _ in range(recipe.max_tries):
        if len(placed) == len(templates):
            break
        centre = _random_in_sphere(rng, radius)
        positions = Rotation.random(random_state=rng).apply(templates[len(placed)].positions) + centre
        if _fits(positions, placed, recipe):
            placed.append(positions)
    else:
        raise RuntimeError(f"could not place {len(templates)} molecules in {recipe.max_tries} tries; loosen the recipe")
    symbols = [s for template in templates for s in template.get_chemical_symbols()]
    cluster = Atoms(symbols, positions=np.concatenate(placed))
    cluster.positions += rng.normal(scale=recipe.noise, size=cluster.positions.shape)
    if ion is not None:
        cluster.info["charge"] = charge
    return cluster


def _anchored(template: Atoms) -> Atoms:
    """The molecule with its heaviest atom first and at the origin (the anchor the recipe spaces)."""
    anchor = int(np.argmax(template.get_masses()))
    order = [anchor] + [k for k in range(len(template)) if k != anchor]
    template = template[order]
    template.positions -= template.positions[0]
    return template


def make_clusters(name: str, sizes: list[int], count: int, seed: int = 0, recipe: ClusterRecipe = ClusterRecipe(),
                  ion: str | None = None, apart: tuple[float, float] | None = None) -> list[Atoms]:
    """``count`` clusters whose sizes (molecules besides the ion) cycle through ``sizes`` (seeded, reproducible);
    with ``apart``, each gets one more molecule at a distance in that range (:func:`with_molecule_apart`)."""
    rng = np.random.default_rng(seed)
    clusters = [make_cluster(name, sizes[k % len(sizes)], rng, recipe, ion) for k in range(count)]
    if apart is not None:
        clusters = [with_molecule_apart(c, name, apart, rng, recipe) for c in clusters]
    return clusters


def with_molecule_apart(cluster: Atoms, name: str, apart: tuple[float, float], rng: np.random.Generator,
                        recipe: ClusterRecipe = ClusterRecipe()) -> Atoms:
    """``cluster`` and one more rigid ``molecule(name)``, randomly turned, whose closest atom to the cluster is
    ``uniform(*apart)`` Angstrom away (a separated fragment: beyond a model's cutoff its only link to the
    cluster is long-range, and a neutral molecule there should stay neutral). ``info["apart"]`` records it."""
    low, high = apart
    if not 0 < low <= high:
        raise ValueError(f"apart {apart}: need 0 < MIN <= MAX (Angstrom)")
    gap = rng.uniform(low, high)
    template = _anchored(molecule(name))
    molecule_positions = Rotation.random(random_state=rng).apply(template.positions)
    molecule_positions += rng.normal(scale=recipe.noise, size=molecule_positions.shape)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    centre = cluster.positions.mean(0)
    extent = np.linalg.norm(cluster.positions - centre, axis=1).max() + np.linalg.norm(molecule_positions, axis=1).max()
    lo, hi = 0.0, extent + gap + 1.0  # bisect the shift along ``direction`` that gives the wanted closest gap
    for _ in range(60):
        mid = (lo + hi) / 2
        closest = np.linalg.norm(cluster.positions[:, None] - (molecule_positions + centre + mid * direction)[None],
                                 axis=-1).min()
        lo, hi = (mid, hi) if closest < gap else (lo, mid)
    joined = cluster + Atoms(template.get_chemical_symbols(), positions=molecule_positions + centre + hi * direction)
    joined.info.update(cluster.info, apart=round(float(gap), 4))
    return joined


def _random_in_sphere(rng: np.random.Generator, radius: float) -> np.ndarray:
    while True:
        point = rng.uniform(-radius, radius, 3)
        if point @ point <= radius**2:
            return point


def _fits(positions: np.ndarray, placed: list[np.ndarray], recipe: ClusterRecipe) -> bool:
    if not placed:
        return True
    others = np.stack([p[0] for p in placed])  # the anchors
    anchor_gaps = np.linalg.norm(others - positions[0], axis=1)
    atom_gaps = np.linalg.norm(np.concatenate(placed)[:, None] - positions[None], axis=-1)
    return (
        anchor_gaps.min() >= recipe.min_anchor_distance
        and anchor_gaps.min() <= recipe.contact_distance
        and atom_gaps.min() >= recipe.min_atom_distance
    )
