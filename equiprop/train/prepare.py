"""From a config to data splits, a model and normalisation constants."""

from dataclasses import dataclass, replace

import numpy as np
import torch
from ase.data import atomic_numbers

from equiprop.data.io import read_structures
from equiprop.data.labels import LabelKeys
from equiprop.data.split import read_split, stratified_split, structure_kind
from equiprop.data.typemap import TypeMap
from equiprop.datasets import WATER_IONS_NAME, WATER_NAME, water, water_with_ions
from equiprop.datasets.qm9_conversion import LABEL_KEYS as QM9_LABEL_KEYS
from equiprop.datasets.qm9_conversion import qm9
from equiprop.errors import InputError, where
from equiprop.keys import Property
from equiprop.models import SchNet, SO3Net
from equiprop.train.config import TrainConfig, config_fields
from equiprop.train.data import LabelledSet, labelled_set


@dataclass
class Splits:
    train: LabelledSet
    val: LabelledSet
    test: LabelledSet
    type_map: TypeMap


#: ``--data qm9``: QM9 from the qm9pack package (equiprop.datasets.qm9) instead of a file.
QM9 = "qm9"
#: ``--data water+ions``: the shipped neutral sets and the H3O+/OH- clusters (equiprop.datasets.water_with_ions).
WATER_IONS = "water+ions"


def label_keys(config: TrainConfig) -> LabelKeys:
    """The configured label keys; for ``--data qm9``, keys left at their defaults become QM9's names."""
    keys = {name: getattr(config, name)
            for name in ("energy_key", "dipole_key", "dipole_magnitude_key", "charges_key", "forces_key", "stress_key",
                                 "quadrupole_key", "polarizability_key")}
    if config.data == QM9:
        defaults = config_fields()
        keys.update({name: key for name, key in QM9_LABEL_KEYS.items() if keys[name] == defaults[name]})
    return LabelKeys(**{name.removesuffix("_key"): key for name, key in keys.items()})


def read_data(config: TrainConfig) -> tuple[list, str]:
    """Frames of ``config.data`` and a name for messages (QM9 from its package, both shipped water sets for None)."""
    if config.data == QM9:
        return qm9(), "QM9 (qm9pack)"
    if config.data == WATER_IONS:
        return water_with_ions(), WATER_IONS_NAME
    if config.data is None:
        return water(), WATER_NAME
    return read_structures(config.data), str(config.data)


def type_map_for(config: TrainConfig, frames) -> TypeMap:
    """``config.elements`` or else the elements of ``frames`` ordered by atomic number."""
    if config.elements:
        return TypeMap(tuple(config.elements))
    symbols = {s for atoms in frames for s in atoms.get_chemical_symbols()}
    return TypeMap(tuple(sorted(symbols, key=atomic_numbers.get)))


def prepare_data(config: TrainConfig, type_map: TypeMap | None = None) -> Splits:
    """Read, check and split the data: train/val/test by the seeded split, or an explicit test file.

    The split is stratified by kind (``info["sample"]``: random, md, minimum) so the
    validation and test sets hold each kind; data of one kind split as before.
    """
    frames, source = read_data(config)
    if config.electrostatics == "polarizable":
        cells = [k for k, a in enumerate(frames) if a.pbc.any()]
        if cells:
            raise InputError(f"{where(cells[0], source)}: pbc is set; --electrostatics polarizable sums induction "
                             "over open boundaries only (use multipole)")
    type_map = type_map or type_map_for(config, frames)
    targets, keys = Property.parse(config.targets), label_keys(config)
    if config.split_file:  # graphs only for the structures the split uses (QM9 has 130k)
        split = read_split(config.split_file, len(frames))
        used = np.unique(np.concatenate([split.train, split.val, split.test]))
        data = labelled_set([frames[k] for k in used], targets, keys, type_map, config.cutoff, source, indices=used)
        position = {int(k): p for p, k in enumerate(used)}
        train, val, test = (data.subset([position[int(k)] for k in part]) for part in (split.train, split.val, split.test))
        if config.test_data:
            test = labelled_set(read_structures(config.test_data), targets, keys, type_map, config.cutoff, config.test_data)
        elif len(test) == 0:
            raise InputError(f"{config.split_file}: no 'test' structures; add them or give --test-data")
        return Splits(train, val, test, type_map)
    data = labelled_set(frames, targets, keys, type_map, config.cutoff, source)
    kinds = [structure_kind(a) for a in frames]  # one kind (e.g. the shipped data alone): the plain seeded split
    if config.test_data:
        split = stratified_split(kinds, val=config.val_fraction, test=0.0, seed=split_seed(config))
        test_frames = read_structures(config.test_data)
        test = labelled_set(test_frames, targets, keys, type_map, config.cutoff, config.test_data)
    else:
        split = stratified_split(kinds, val=config.val_fraction, test=config.test_fraction, seed=split_seed(config))
        test = data.subset(split.test)
    return Splits(data.subset(split.train), data.subset(split.val), test, type_map)


def split_seed(config: TrainConfig) -> int:
    """The seed of the train/val/test split: ``split_seed``, else ``seed``."""
    return config.seed if config.split_seed is None else config.split_seed


def mean_neighbors(data: LabelledSet) -> float:
    """Average number of neighbours per atom, rounded to 0.01."""
    atoms = sum(g.n_atoms for g in data.graphs)
    return round(sum(g.n_edges for g in data.graphs) / max(atoms, 1), 2) or 1.0


def resolved_electrostatics(config: TrainConfig, splits: Splits) -> str:
    """``config.electrostatics`` with ``auto`` decided: ``multipole`` (charges and atomic dipoles, and
    quadrupoles when a target) for SO3Net with the dipole and energy targets when no structure of the
    data is periodic, else ``none``. In 300 s on the shipped water it gave 20-30% lower energy and
    force errors and 3x better isomer energies (docs/benchmarks.md). Data with cells keep ``none``: a
    cell has no dipole label to train the atomic dipoles on, and nothing is measured there yet (both
    terms sum cells by Ewald when asked, nn/ewald.py). With a charged structure in the data, ``polarizable``
    (multipole plus induction beyond the cutoff, nn/induction.py): with the formal spread that ``auto``
    gives such data, the ion's tail within 1.4 meV of PBE0 from 7 A against 2-3.4 meV too weak, minima
    energies 1.4x better, forces 3.5% worse (three seeds, docs/benchmarks.md "Induction beyond the cutoff")."""
    if config.electrostatics != "auto":
        return config.electrostatics
    frames = [a for part in (splits.train, splits.val, splits.test) for a in part.frames]
    open_boundaries = not any(a.pbc.any() for a in frames)
    wanted = config.model == "so3net" and {"dipole", "energy"} <= set(config.targets)
    if not (wanted and open_boundaries):
        return "none"
    return "polarizable" if _charged(splits) else "multipole"


def _charged(splits: Splits) -> bool:
    """Whether a structure of the data has a non-zero total charge (``info["charge"]``)."""
    return any(g.total_charge != 0 for part in (splits.train, splits.val, splits.test) for g in part.graphs)


def resolved_charge_spread(config: TrainConfig, splits: Splits) -> str:
    """``config.charge_spread`` with ``auto`` decided: ``formal`` when a structure of the data is charged,
    else ``uniform``. On the mixed ion recipe (three seeds, docs/benchmarks.md "Charges conserved per
    molecule", "Induction beyond the cutoff") formal left a water beyond the cutoff of H3O+ exactly neutral
    and, with the induction ``auto`` adds, the ion's tail within 1.4 meV of PBE0 from 7 A (uniform: 18-37
    meV off, the leaked charge), held-out minima energies 1.6 against 2.9 meV/atom, isomers 1.4x better,
    forces 8% worse; on neutral data the two differ only in where a structure's small rounding excess
    goes, and uniform keeps every neutral benchmark as measured."""
    if config.charge_spread != "auto":
        return config.charge_spread
    return "formal" if _charged(splits) else "uniform"


def resolved(config: TrainConfig, splits: Splits) -> TrainConfig:
    """``config`` with its ``auto`` choices (electrostatics, charge spread) decided for ``splits``."""
    return replace(config, electrostatics=resolved_electrostatics(config, splits),
                   charge_spread=resolved_charge_spread(config, splits))


def build_model(config: TrainConfig, type_map: TypeMap, avg_neighbors: float):
    common = dict(
        elements=list(type_map.elements), cutoff=config.cutoff, features=config.features,
        interactions=config.interactions, targets=config.targets, n_rbf=config.n_rbf,
        charge_constraint=config.charge_constraint, repulsion=config.repulsion, dtype=config.dtype,
        electrostatics=config.electrostatics, charge_spread=config.charge_spread,
    )
    if config.model == "schnet":
        return SchNet(**common)
    return SO3Net(**common, lmax=config.lmax, sh_lmax=config.sh_lmax, radial_hidden=config.radial_hidden, avg_neighbors=config.avg_neighbors or avg_neighbors)


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
