"""From a config to data splits, a model and normalisation constants."""

from dataclasses import dataclass

import numpy as np
import torch
from ase.data import atomic_numbers

from equiprop.data.io import read_structures
from equiprop.data.labels import LabelKeys
from equiprop.data.split import split_indices
from equiprop.data.typemap import TypeMap
from equiprop.datasets import water_pbe0_path
from equiprop.keys import Property
from equiprop.models import SchNet, SO3Net
from equiprop.train.config import TrainConfig
from equiprop.train.data import LabelledSet, labelled_set


@dataclass
class Splits:
    train: LabelledSet
    val: LabelledSet
    test: LabelledSet
    type_map: TypeMap


def label_keys(config: TrainConfig) -> LabelKeys:
    return LabelKeys(energy=config.energy_key, dipole=config.dipole_key, charges=config.charges_key, forces=config.forces_key)


def data_path(path: str | None):
    """The data file, or the shipped PBE0 water clusters when None."""
    return water_pbe0_path() if path is None else path


def type_map_for(config: TrainConfig, frames) -> TypeMap:
    """``config.elements`` or else the elements of ``frames`` ordered by atomic number."""
    if config.elements:
        return TypeMap(tuple(config.elements))
    symbols = {s for atoms in frames for s in atoms.get_chemical_symbols()}
    return TypeMap(tuple(sorted(symbols, key=atomic_numbers.get)))


def prepare_data(config: TrainConfig, type_map: TypeMap | None = None) -> Splits:
    """Read, check and split the data: train/val/test by the seeded split, or an explicit test file."""
    path = data_path(config.data)
    frames = read_structures(path)
    type_map = type_map or type_map_for(config, frames)
    targets, keys = Property.parse(config.targets), label_keys(config)
    data = labelled_set(frames, targets, keys, type_map, config.cutoff, str(path))
    if config.test_data:
        split = split_indices(len(data), val=config.val_fraction, test=0.0, seed=config.seed)
        test_frames = read_structures(config.test_data)
        test = labelled_set(test_frames, targets, keys, type_map, config.cutoff, config.test_data)
    else:
        split = split_indices(len(data), val=config.val_fraction, test=config.test_fraction, seed=config.seed)
        test = data.subset(split.test)
    return Splits(data.subset(split.train), data.subset(split.val), test, type_map)


def mean_neighbors(data: LabelledSet) -> float:
    """Average number of neighbours per atom, rounded to 0.01."""
    atoms = sum(g.n_atoms for g in data.graphs)
    return round(sum(g.n_edges for g in data.graphs) / max(atoms, 1), 2) or 1.0


def build_model(config: TrainConfig, type_map: TypeMap, avg_neighbors: float):
    common = dict(
        elements=list(type_map.elements), cutoff=config.cutoff, features=config.features,
        interactions=config.interactions, targets=config.targets, n_rbf=config.n_rbf,
        charge_constraint=config.charge_constraint, dtype=config.dtype,
    )
    if config.model == "schnet":
        return SchNet(**common)
    return SO3Net(**common, lmax=config.lmax, radial_hidden=config.radial_hidden, avg_neighbors=config.avg_neighbors or avg_neighbors)


def fit_normalization(model, train: LabelledSet) -> dict[str, float]:
    """Fit the energy references and scale into ``model``; return each target's loss scale (its spread).

    The model's ``energy_scale`` is the RMS force component when forces are
    trained (as in MACE): forces are gradients of the scaled network output,
    and a per-atom energy spread (~0.03 eV for water) would make them far too
    small to learn. Without forces it is the RMS per-atom energy residual.
    """
    scales = {}
    for prop, values in train.labels.items():
        if prop is Property.ENERGY:
            model.fit_energy_references(train.frames, np.array([float(v) for v in values]))
            scales[prop.value] = float(model.energy_scale)
        else:
            flat = torch.cat([v.reshape(-1) for v in values])
            scales[prop.value] = float(flat.pow(2).mean().sqrt()) or 1.0
    if Property.FORCES.value in scales:
        with torch.no_grad():
            model.energy_scale.fill_(scales[Property.FORCES.value])
    return scales
