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


def weighted_loss(
    errors: Tensors, scales: dict[Property, float], weights: dict[Property, float], counts: dict[Property, int] | None = None
) -> torch.Tensor:
    """``sum_t w_t * sum((error_t / scale_t)^2) / count_t``: each target's error in units of its spread.

    ``count_t`` defaults to the number of error components here (a mean). A
    data-parallel rank passes the counts of the whole global batch instead, so
    the ranks' losses add up to the loss of the global batch.
    """
    return sum(
        weights[p] * (e / scales[p]).pow(2).sum() / (counts[p] if counts is not None else e.numel()) for p, e in errors.items()
    )

