"""Run a model over a labelled set: error metrics and parity data."""

from dataclasses import dataclass

import numpy as np
import torch

from equiprop.keys import Property
from equiprop.nn.scatter import scatter_sum
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
    was_training = model.training
    model.eval()
    try:
        for indices in batch_order(len(data), batch_size, shuffle=False):
            batch, labels = make_batch(data, indices, None if graphs else reference.device, reference.dtype)
            if graphs:
                pred = graphs(batch)
                batch, labels = batch.to(reference.device), {p: v.to(reference.device) for p, v in labels.items()}
            else:
                with torch.set_grad_enabled(with_forces):
                    pred = model(batch, compute_forces=with_forces)
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
    """Errors of ``model`` on ``data`` and parity pairs (energies per atom, relative to the element references)."""
    targets = list(data.labels)
    sums, pairs = ErrorSums(targets), {p: ([], []) for p in targets}
    for batch, labels, pred in predictions(model, data, batch_size):
        sums.add(residuals(pred, labels, batch))
        for prop in targets:
            ref, out = labels[prop], pred[prop]
            if prop is Property.ENERGY:  # per atom, minus the fitted element references
                offset = scatter_sum(model.element_energies[batch.types], batch.structure, batch.n_structures)
                ref, out = (ref - offset) / batch.n_atoms, (out - offset) / batch.n_atoms
            pairs[prop][0].append(ref.cpu().numpy().ravel())
            pairs[prop][1].append(out.cpu().numpy().ravel())
    parity = {p: (np.concatenate(r), np.concatenate(o)) for p, (r, o) in pairs.items()}
    return Evaluation(sums.result(), parity)
