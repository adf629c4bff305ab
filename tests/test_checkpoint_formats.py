"""Checkpoints of older equiprop versions: what still loads, and gives the same predictions."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from equiprop import datasets
from equiprop.errors import InputError
from equiprop.models.checkpoint import FORMAT, load_checkpoint, load_model

DATA = Path(__file__).parent / "data"


def test_format2_so3net_loads_trimmed_and_predicts_as_when_written():
    """tests/data/so3net-format2.pt was written by equiprop 537215a (float64, 2 interactions, lmax 2).

    Its last interaction had weights for l = 0, 1, 2; this version keeps those
    for l <= 1 (the readouts' degrees) and must reproduce the old predictions.
    """
    reference = json.loads((DATA / "so3net-format2.json").read_text())["predictions"]
    payload = load_checkpoint(DATA / "so3net-format2.pt")
    assert payload["format"] == "equiprop-checkpoint-2" != FORMAT and payload["converted_from"] == payload["format"]
    assert payload["state_dict"]["interactions.1.mix.weight"].shape[0] == 2  # was 3 (l = 0, 1, 2)
    model = load_model(DATA / "so3net-format2.pt")
    out = model.predict(datasets.water_pbe0()[:2])
    for key, expected in reference.items():
        got = out[key] if isinstance(out[key], np.ndarray) else np.concatenate(out[key])
        want = np.asarray(expected) if isinstance(out[key], np.ndarray) else np.concatenate([np.asarray(e) for e in expected])
        assert np.abs(got).max() > 0
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=key)


def test_format2_so3net_run_cannot_be_resumed(tmp_path):
    from equiprop.train.run import _resumed_trainer
    from equiprop.train.config import TrainConfig

    run = tmp_path / "old-run"
    run.mkdir()
    (run / "last.pt").write_bytes((DATA / "so3net-format2.pt").read_bytes())
    with pytest.raises(InputError, match="older equiprop.*start a new one"):
        _resumed_trainer(TrainConfig(), run, print, None, torch.device("cpu"))


def test_format2_conversion_cuts_only_the_last_interactions_degree_weights(tmp_path):
    """A format 2 file whose other weights do not fit is an error, not silently cropped into a working model."""
    payload = torch.load(DATA / "so3net-format2.pt", weights_only=True)
    key = "interactions.0.mix.weight"  # first interaction: never trimmed
    payload["state_dict"][key] = torch.cat([payload["state_dict"][key]] * 2, dim=1)
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(InputError, match=f"weights do not fit.*{key}"):
        load_model(tmp_path / "bad.pt")
