"""`equiprop check` catches a real violation of the size of a model's error, in float32, on large totals."""

import numpy as np
import torch
from conftest import make_model, water_cluster

from equiprop.nn.scatter import scatter_sum
from equiprop.keys import Property
from equiprop.models.predict import predict
from equiprop.train.symmetry import DEFAULT_TOLERANCE, symmetry_deviations

#: A violation of about the model's energy error: up to 5 meV/atom that depends on the absolute x.
VIOLATION = 5e-3


def _with_realistic_references(model):
    with torch.no_grad():  # H and O references of PBE0 water: totals of -2,000 to -25,000 eV
        model.element_energies.copy_(torch.tensor([-13.6, -2040.0]))
    return model


def _broken(model):
    """``model`` whose energy gains ``VIOLATION * sum_i tanh(x_i)``: not invariant under rotations and translations."""
    honest = type(model).outputs

    def outputs(self, batch, positions, references=True):
        out = honest(self, batch, positions, references)
        extra = VIOLATION * torch.tanh(positions[:, 0])
        out[Property.ENERGY] = out[Property.ENERGY] + scatter_sum(extra, batch.structure, batch.n_structures)
        return out

    model.__class__ = type("Broken" + type(model).__name__, (type(model),), {"outputs": outputs})
    return model


def _frames():
    return [water_cluster(n, seed=n) for n in (4, 8, 12)]


def test_an_equivariant_float32_model_passes_with_large_totals():
    model = _with_realistic_references(make_model("so3net", dtype=torch.float32))
    deviations = symmetry_deviations(model, _frames(), n_transforms=2)
    assert set(deviations) == {"charges", "dipole", "energy", "forces"}
    assert max(deviations.values()) <= DEFAULT_TOLERANCE[torch.float32], deviations


def test_check_catches_a_violation_of_the_size_of_the_energy_error():
    model = _broken(_with_realistic_references(make_model("so3net", dtype=torch.float32)))
    frames = _frames()
    deviations = symmetry_deviations(model, frames, n_transforms=2)
    tol = DEFAULT_TOLERANCE[torch.float32]
    assert deviations["energy"] > 10 * tol and deviations["forces"] > 10 * tol, deviations
    assert deviations["charges"] <= tol and deviations["dipole"] <= tol, deviations
    # measured relative to the total energy, as the check once did, the same violation hid below 1e-4
    totals = np.abs(predict(model, frames)["energy"])
    assert deviations["energy"] * max(len(a) for a in frames) / totals.min() < 1e-4
