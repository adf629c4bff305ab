"""Run a model over a labelled set: error metrics and parity data."""

from dataclasses import dataclass

import numpy as np
import torch

from equiprop.keys import Property
from equiprop.train.data import LabelledSet, batch_order, make_batch
from equiprop.train.losses import residuals
from equiprop.train.metrics import ErrorSums


@dataclass
class Evaluation:
    """Metrics (reported units) and parity pairs (reference, prediction) per target."""

    metrics: dict[str, dict[str, float]]
    parity: dict[Property, tuple[np.ndarray, np.ndarray]]


def evaluate(model, data: LabelledSet, batch_size: int = 32) -> Evaluation:
    """Errors of ``model`` on ``data`` (energies per atom, relative to the element references)."""
    reference = next(model.parameters())
    targets = list(data.labels)
    sums, pairs = ErrorSums(targets), {p: ([], []) for p in targets}
    was_training = model.training
    model.eval()
    try:
        for indices in batch_order(len(data), batch_size, shuffle=False):
            batch, labels = make_batch(data, indices, reference.device, reference.dtype)
            with torch.set_grad_enabled(Property.FORCES in targets):
                pred = model(batch, compute_forces=Property.FORCES in targets)
            sums.add(residuals(pred, labels, batch))
            offset = _energy_offset(model, batch) if Property.ENERGY in targets else None
            for prop in targets:
                ref, out = labels[prop], pred[prop].detach()
                if prop is Property.ENERGY:  # per atom, minus the fitted element references
                    ref, out = (ref - offset) / batch.n_atoms, (out - offset) / batch.n_atoms
                pairs[prop][0].append(ref.cpu().numpy().ravel())
                pairs[prop][1].append(out.cpu().numpy().ravel())
    finally:
        model.train(was_training)
    parity = {p: (np.concatenate(r), np.concatenate(o)) for p, (r, o) in pairs.items()}
    return Evaluation(sums.result(), parity)


def _energy_offset(model, batch) -> torch.Tensor:
    """Sum of the element reference energies of each structure, ``[n_structures]``."""
    per_atom = model.element_energies[batch.types]
    return torch.zeros(batch.n_structures, dtype=per_atom.dtype, device=per_atom.device).index_add(0, batch.structure, per_atom)
