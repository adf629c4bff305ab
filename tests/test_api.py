"""The public API as outside users call it, and its documentation."""

import inspect

import numpy as np
import pytest

import equiprop
from conftest import water_cluster


@pytest.mark.parametrize("cls", [equiprop.SO3Net, equiprop.SchNet])
def test_documented_arguments(cls):
    doc = inspect.getdoc(cls)
    for name in inspect.signature(cls).parameters:
        assert f"{name}:" in doc, f"{cls.__name__} docstring does not document {name!r}"


def test_predict_shapes_of_both_models():
    frames = [water_cluster(n, seed=n) for n in (1, 2, 3)]
    m = equiprop.SO3Net(elements=["H", "O"], cutoff=3.0, lmax=2, features=32, interactions=3, targets=["charges", "dipole", "energy"])
    p = m.predict(frames, batch_size=32)
    assert [c.shape for c in p["charges"]] == [(3,), (6,), (9,)]
    assert p["dipole"].shape == (3, 3) and p["energy"].shape == (3,)
    assert [f.shape for f in p["forces"]] == [(3, 3), (6, 3), (9, 3)]
    s = equiprop.SchNet(elements=["H", "O"], cutoff=3.0, features=32, interactions=3, targets=["charges", "dipole", "energy"])
    q = s.predict(frames, batch_size=2)
    assert q["dipole"].shape == (3, 3) and all(np.isfinite(q["energy"]))


def test_targets_are_checked():
    with pytest.raises(ValueError, match="unknown target 'dipoles'; valid targets: charges, dipole, dipole_magnitude, energy, forces"):
        equiprop.SchNet(elements=["H"], targets=["dipoles"])
    with pytest.raises(ValueError, match="invariant"):
        equiprop.SchNet(elements=["H"], targets=["dipole"], dipole_from_charges=False)
    assert equiprop.SchNet(elements=["H"], targets="forces").targets == (equiprop.Property.ENERGY, equiprop.Property.FORCES)


@pytest.mark.parametrize("sh_lmax", [None, 2])
def test_hparams_rebuild_the_model(sh_lmax):
    import torch

    m = equiprop.SO3Net(elements=["O", "H"], cutoff=2.5, lmax=1, sh_lmax=sh_lmax, features=8, interactions=1, targets=["energy"])
    torch.manual_seed(1)
    with torch.no_grad():  # an untrained energy head outputs exactly 0: randomise every weight
        for p in m.parameters():
            p.normal_(std=0.5)
    clone = equiprop.SO3Net(**m.hparams)
    clone.load_state_dict(m.state_dict())
    frames = [water_cluster(2)]
    ours, theirs = m.predict(frames), clone.predict(frames)
    assert np.abs(ours["energy"]).min() > 1e-3 and np.abs(ours["forces"][0]).max() > 1e-3
    assert np.array_equal(theirs["energy"], ours["energy"]) and np.array_equal(theirs["forces"][0], ours["forces"][0])
    assert m.hparams["elements"] == ["O", "H"] and m.hparams["dtype"] == "float32" and m.hparams["sh_lmax"] == sh_lmax


def test_adamw_is_fused_on_cpu_and_steps_like_the_reference():
    """The trainer's optimiser: PyTorch's fused AdamW where available, the same update as the per-tensor loop."""
    import torch

    from equiprop.train.optim import adamw

    torch.manual_seed(0)
    model = equiprop.SchNet(elements=["H", "O"], features=8, interactions=1, dtype="float64")
    reference = [p.detach().clone().requires_grad_() for p in model.parameters()]
    fused, loop = adamw(model, 1e-2, 1e-3), torch.optim.AdamW(reference, lr=1e-2, weight_decay=1e-3, foreach=False)
    assert fused.param_groups[0]["fused"]
    for step in range(3):
        for p, q in zip(model.parameters(), reference):
            p.grad = torch.full_like(p, 0.1 * (step + 1)) + p.detach()
            q.grad = p.grad.clone()
        fused.step()
        loop.step()
    for p, q in zip(model.parameters(), reference):
        assert torch.allclose(p, q, rtol=1e-12, atol=1e-14)


def test_moving_average_warms_up_then_decays():
    """EMA: the first update copies, then ``a += w (c - a)`` with ``w = 1 - min(decay, (1 + n) / (10 + n))``."""
    import torch

    from equiprop.train.optim import MovingAverage

    model = equiprop.SchNet(elements=["H", "O"], features=4, interactions=1, dtype="float64")
    ema = MovingAverage(model, decay=0.5)
    values = [1.0, 3.0, 7.0, 15.0]
    expected = None
    for n, value in enumerate(values):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(value)
        ema.update()
        weight = 1.0 - min(0.5, (1.0 + n) / (10.0 + n))
        expected = value if n == 0 else expected + weight * (value - expected)
    assert int(ema.average.n_averaged) == 4
    for p in ema.average.module.parameters():
        assert torch.allclose(p, torch.full_like(p, expected), rtol=1e-14)
    assert expected != values[-1]  # the weights of steps 1-3 are 0.9, 0.82, 0.5: not a copy
