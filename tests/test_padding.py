"""Padded batches (for CUDA graphs) give the loss, metrics and gradients of the unpadded batch."""

from dataclasses import replace

import pytest
import torch

from conftest import ELEMENTS, periodic_water, water_cluster
from equiprop.data.graph import frames_to_graphs
from equiprop.data.typemap import TypeMap
from equiprop.data.batch import collate
from equiprop.keys import Property
from equiprop.models import SchNet, SO3Net
from equiprop.train.losses import residuals, weighted_loss
from equiprop.data.padding import PaddedShape, bucket, pad_batch

TARGETS = (Property.CHARGES, Property.DIPOLE, Property.DIPOLE_MAGNITUDE, Property.ENERGY, Property.FORCES)  # every target
CUTOFF = 3.5


def test_bucket_ladder():
    sizes = [bucket(n) for n in range(1, 5000)]
    assert all(size >= n for n, size in zip(range(1, 5000), sizes))
    assert all(size <= max(1.25 * n, 8) for n, size in zip(range(1, 5000), sizes))  # at most 25% padding
    assert sorted(set(sizes))[:12] == [8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56]
    assert bucket(264) == 320 and bucket(256) == 256


def model_and_batch(kind: str, paired: bool, **sizes):
    torch.manual_seed(0)
    sizes = {"lmax": 2, **sizes}
    model = (SO3Net(ELEMENTS, cutoff=CUTOFF, features=8, interactions=2, targets=TARGETS, dtype="float64", **sizes)
             if kind == "so3net" else SchNet(ELEMENTS, cutoff=CUTOFF, features=8, interactions=2, targets=TARGETS,
                                             dtype="float64"))
    with torch.no_grad():  # trained-like heads: the untrained ones predict exactly zero, also on padding
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        model.element_energies.copy_(torch.tensor([-13.6, -2041.0]))
    frames = [water_cluster(3, seed=1), periodic_water(seed=2), water_cluster(2, seed=3)]
    graphs = frames_to_graphs(frames, TypeMap(tuple(ELEMENTS)), CUTOFF)
    if not paired:  # a graph whose edges are not in pairs makes the batch unpaired
        g = graphs[0]
        keep = torch.arange(g.n_edges) != 0
        graphs[0] = type(g)(g.positions, g.types, g.edge_index[:, keep], g.cell_shifts[keep], g.cell, g.total_charge)
    batch = collate(graphs)
    assert batch.paired_edges == paired
    generator = torch.Generator().manual_seed(5)
    labels = {
        Property.CHARGES: torch.randn(batch.positions.shape[0], generator=generator, dtype=torch.float64) * 0.1,
        Property.DIPOLE: torch.randn(batch.n_structures, 3, generator=generator, dtype=torch.float64),
        Property.DIPOLE_MAGNITUDE: torch.rand(batch.n_structures, generator=generator, dtype=torch.float64),
        Property.ENERGY: torch.randn(batch.n_structures, generator=generator, dtype=torch.float64),
        Property.FORCES: torch.randn(batch.positions.shape[0], 3, generator=generator, dtype=torch.float64),
    }
    return model, batch, labels


def loss_and_gradients(model, batch, labels, padded=None):
    scales = {p: 0.5 + k for k, p in enumerate(TARGETS)}
    weights = {p: 1.0 + 0.1 * k for k, p in enumerate(TARGETS)}
    model.zero_grad(set_to_none=True)
    if padded is None:
        errors = residuals(model(batch, compute_forces=True), labels, batch)
        counts = None
    else:
        errors = padded.masked(residuals(model(padded.batch, compute_forces=True), padded.labels, padded.batch))
        counts = dict(zip(padded.labels, padded.counts))
    loss = weighted_loss(errors, scales, weights, counts)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, errors


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "unpaired"])
@pytest.mark.parametrize("kind, sizes", [("so3net", {}), ("so3net", {"lmax": 1, "sh_lmax": 2}), ("schnet", {})],
                         ids=["so3net", "so3net-sh2", "schnet"])
def test_padded_batch_gives_the_same_loss_and_gradients(kind, sizes, paired):
    model, batch, labels = model_and_batch(kind, paired, **sizes)
    shape = PaddedShape.of(batch, structures=5)  # two empty structure slots, and the padding structure
    padded = pad_batch(batch, labels, shape, CUTOFF)
    assert padded.batch.positions.shape[0] == shape.atoms > batch.positions.shape[0]
    assert padded.batch.edge_index.shape[1] == shape.edges > batch.edge_index.shape[1]
    assert padded.batch.paired_edges == paired and padded.batch.n_structures == 6

    loss, gradients, errors = loss_and_gradients(model, batch, labels)
    padded_loss, padded_gradients, padded_errors = loss_and_gradients(model, batch, labels, padded)
    assert torch.isfinite(padded_loss)
    assert padded_loss.item() == pytest.approx(loss.item(), rel=1e-12)
    assert gradients.keys() == padded_gradients.keys()
    for name, gradient in gradients.items():
        assert torch.allclose(padded_gradients[name], gradient, rtol=1e-10, atol=1e-14), name
    for prop, error in errors.items():  # metrics: the same sums; the padding's entries are exactly zero
        real = padded_errors[prop][: error.shape[0]]
        assert torch.allclose(real, error, rtol=1e-10, atol=1e-14), prop
        assert not padded_errors[prop][error.shape[0]:].any(), prop
    assert padded.counts.tolist() == [float(v.numel()) for v in labels.values()]


def test_padding_edges_carry_no_messages():
    """The padding atom's edges (to its own image one padding cell away) lie beyond the cutoff and change nothing.

    Control: the same edges with the image inside the cutoff do change the padding
    structure's energy, so the comparison can see a message.
    """
    model, batch, labels = model_and_batch("so3net", True)
    padded = pad_batch(batch, labels, PaddedShape.of(batch, structures=3), CUTOFF)

    def with_padding_cell(width: float):
        cell = padded.batch.cell.clone()
        cell[-1] = torch.eye(3, dtype=torch.float64) * width
        out = model(replace(padded.batch, cell=cell), compute_forces=True)
        return out[Property.ENERGY].detach(), out[Property.FORCES].detach()

    (energy, forces), (farther, farther_forces) = with_padding_cell(2.0 * CUTOFF), with_padding_cell(5.0 * CUTOFF)
    assert torch.equal(energy, farther) and torch.equal(forces, farther_forces)
    near, _ = with_padding_cell(0.6 * CUTOFF)
    assert torch.equal(near[:3], energy[:3]) and abs(near[-1] - energy[-1]) > 1e-6
    unpadded = model(batch, compute_forces=True)
    assert torch.allclose(energy[:3], unpadded[Property.ENERGY].detach(), rtol=1e-12, atol=1e-10)


def test_batch_that_does_not_fit_is_refused():
    model, batch, labels = model_and_batch("schnet", True)
    with pytest.raises(ValueError, match="slots"):
        PaddedShape.of(batch, structures=2)
    small = PaddedShape(atoms=batch.positions.shape[0], edges=batch.edge_index.shape[1], structures=3)
    with pytest.raises(ValueError, match="does not fit"):
        pad_batch(batch, labels, small, CUTOFF)


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "unpaired"])
@pytest.mark.parametrize("kind", ["so3net", "schnet"])
def test_padded_inference_gives_the_real_outputs(kind, paired):
    """What a recorded inference graph computes: the padded outputs' first rows are the batch's outputs."""
    from equiprop.models.graphed import detached_outputs, unpad

    model, batch, _ = model_and_batch(kind, paired)
    model.eval()
    expected = model(batch, compute_forces=True)
    padded = pad_batch(batch, {}, PaddedShape.of(batch, structures=5), CUTOFF)
    got = unpad(detached_outputs(model, padded.batch, with_forces=True), batch.positions.shape[0], batch.n_structures)
    assert got.keys() == expected.keys()
    for prop, value in expected.items():
        assert got[prop].shape == value.shape
        assert torch.allclose(got[prop], value.detach(), rtol=1e-12, atol=1e-14), prop
