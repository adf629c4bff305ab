"""Run a model over a labelled set: error metrics and parity data."""

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch
from ase.units import kcal, mol

from equiprop.keys import Property
from equiprop.train.data import LabelledSet, batch_order, make_batch
from equiprop.train.losses import residuals
from equiprop.train.metrics import ErrorSums


@dataclass
class Evaluation:
    """Metrics (reported units) and parity pairs (reference, prediction) per target."""

    metrics: dict[str, dict[str, float]]
    parity: dict[Property, tuple[np.ndarray, np.ndarray]]


def predictions(model, data: LabelledSet, batch_size: int, graphs=None):
    """Yield ``(batch, labels, predictions)`` over ``data`` in order, the model in eval mode.

    ``graphs``: a :class:`equiprop.models.graphed.GraphedInference` of ``model`` for
    at least ``batch_size`` structures, replaying CUDA graphs (the trainer's validation on a GPU).
    """
    reference = next(model.parameters())
    with_forces = Property.FORCES in data.labels
    with_stress = Property.STRESS in data.labels
    graphs = None if with_stress else graphs  # inference graphs record forces only
    was_training = model.training
    model.eval()
    try:
        for indices in batch_order(len(data), batch_size, shuffle=False):
            batch, labels = make_batch(data, indices, None if graphs else reference.device, reference.dtype)
            if graphs:
                pred = graphs(batch)
                batch, labels = batch.to(reference.device), {p: v.to(reference.device) for p, v in labels.items()}
            else:
                with torch.set_grad_enabled(with_forces or with_stress):
                    pred = model(batch, compute_forces=with_forces, compute_stress=with_stress)
            yield batch, labels, {p: v.detach() for p, v in pred.items()}
    finally:
        model.train(was_training)


def error_sums(model, data: LabelledSet, batch_size: int = 32, graphs=None) -> ErrorSums:
    """Errors of ``model`` on ``data``, as sums (energies per atom); ``graphs`` as in :func:`predictions`."""
    sums = ErrorSums(list(data.labels))
    for batch, labels, pred in predictions(model, data, batch_size, graphs):
        sums.add(residuals(pred, labels, batch))
    return sums


def evaluate(model, data: LabelledSet, batch_size: int = 32) -> Evaluation:
    """Errors of ``model`` on ``data`` and parity pairs (energies per atom, relative to the element references).

    With energies, ``metrics["relative_energy"]`` (when some formula occurs more than
    once) holds the errors of energies relative to the lowest isomer (:func:`isomer_errors`).
    """
    targets = list(data.labels)
    sums, pairs = ErrorSums(targets), {p: ([], []) for p in targets}
    predicted_totals = []  # eV, for isomer errors (float32 resolves a 1e4 eV total to about 1 meV)
    for batch, labels, pred in predictions(model, data, batch_size):
        sums.add(residuals(pred, labels, batch))
        for prop in targets:
            ref, out = labels[prop], pred[prop]
            if prop is Property.ENERGY:  # per atom, minus the fitted element (and charge) references
                offset = model.reference_energy(batch)
                predicted_totals.append(out.double().cpu().numpy())
                ref, out = (ref - offset) / batch.n_atoms, (out - offset) / batch.n_atoms
            pairs[prop][0].append(ref.cpu().numpy().ravel())
            pairs[prop][1].append(out.cpu().numpy().ravel())
    parity = {p: (np.concatenate(r), np.concatenate(o)) for p, (r, o) in pairs.items()}
    metrics = sums.result()
    if predicted_totals:
        formulas = [atoms.get_chemical_formula() for atoms in data.frames]
        reference = np.array([float(v) for v in data.labels[Property.ENERGY]])  # float64 labels
        isomers = isomer_errors(formulas, reference, np.concatenate(predicted_totals))
        if isomers:
            metrics["relative_energy"] = isomers
    return Evaluation(metrics, parity)


#: eV -> kcal/mol
EV_IN_KCAL_PER_MOL = mol / kcal


def isomer_errors(formulas: list[str], reference: np.ndarray, predicted: np.ndarray) -> dict:
    """Errors of isomer energies relative to the lowest isomer (by reference energy) of each formula.

    ``reference, predicted [n_structures]``: total energies (eV). For each formula
    with n > 1 structures, the n - 1 others give ``(E_i - E_low)_pred - (E_i -
    E_low)_ref``; MAE and RMSE over all of them in kcal/mol (``mae_meV`` in meV).
    Empty when no formula repeats.
    """
    groups = defaultdict(list)
    for k, formula in enumerate(formulas):
        groups[formula].append(k)
    errors = []
    for members in groups.values():
        if len(members) < 2:
            continue
        members = np.asarray(members)
        low = members[np.argmin(reference[members])]
        others = members[members != low]
        errors.append((predicted[others] - predicted[low]) - (reference[others] - reference[low]))
    if not errors:
        return {}
    e = np.concatenate(errors)
    return {"mae": float(np.abs(e).mean() * EV_IN_KCAL_PER_MOL), "rmse": float(np.sqrt((e**2).mean()) * EV_IN_KCAL_PER_MOL),
            "unit": "kcal/mol", "mae_meV": float(np.abs(e).mean() * 1000), "n_pairs": int(e.size),
            "n_formulas": sum(len(m) > 1 for m in groups.values())}
