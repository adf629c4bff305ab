"""Normalised, weighted mean squared error over the targets."""

import torch

from equiprop.data.batch import GraphBatch
from equiprop.keys import Property

Tensors = dict[Property, torch.Tensor]


def residuals(pred: Tensors, ref: Tensors, batch: GraphBatch) -> Tensors:
    """Prediction minus reference; energies per atom (``[n_structures]``), the rest as they come."""
    out = {}
    for prop, value in ref.items():
        diff = pred[prop] - value
        out[prop] = diff / batch.n_atoms.to(diff.dtype) if prop is Property.ENERGY else diff
    return out


def weighted_loss(errors: Tensors, scales: dict[Property, float], weights: dict[Property, float]) -> torch.Tensor:
    """``sum_t w_t * mean((error_t / scale_t)^2)``: each target's error in units of its spread."""
    return sum(weights[p] * (e / scales[p]).pow(2).mean() for p, e in errors.items())
