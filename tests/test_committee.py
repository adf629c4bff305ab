"""Committees: means and spreads equal the members' own predictions; train --ensemble; every loader; the calculator."""

import json
import warnings

import ase.io
import numpy as np
import pytest
import torch

from conftest import SMALL, make_model, random_rotation, rotated, water_cluster
from equiprop.calculator import EquipropCalculator
from equiprop.cli.main import main
from equiprop.models.committee import Committee
from equiprop.models.checkpoint import load_model, save_committee


def committee(kind="so3net", n=3):
    return Committee([make_model(kind, seed=s, targets=["charges", "dipole", "energy", "forces"]) for s in range(n)])


def test_means_and_spreads_are_the_members_own():
    frames = [water_cluster(n, seed=n) for n in (2, 3, 5)]
    group = committee()
    out = group.predict(frames, batch_size=2)  # a batch split across structures, too
    singles = [m.predict(frames, batch_size=1) for m in group.members]
    for key in ("energy", "dipole"):
        stacked = np.stack([s[key] for s in singles])
        np.testing.assert_allclose(out[key], stacked.mean(0), atol=1e-10)
    np.testing.assert_allclose(out["energy_std"], np.stack([s["energy"] for s in singles]).std(0, ddof=1), atol=1e-10)
    dipole_std = np.sqrt((np.stack([s["dipole"] for s in singles]).std(0, ddof=1) ** 2).mean(-1))
    np.testing.assert_allclose(out["dipole_std"], dipole_std, atol=1e-10)
    for k in range(len(frames)):
        forces = np.stack([s["forces"][k] for s in singles])  # [members, atoms, 3]
        np.testing.assert_allclose(out["forces"][k], forces.mean(0), atol=1e-10)
        np.testing.assert_allclose(out["forces_std"][k], np.sqrt((forces.std(0, ddof=1) ** 2).mean(-1)), atol=1e-10)
        charges = np.stack([s["charges"][k] for s in singles])
        np.testing.assert_allclose(out["charges_std"][k], charges.std(0, ddof=1), atol=1e-10)
        assert out["forces_std"][k].shape == (len(frames[k]),)
    assert (out["forces_std"][0] > 0).all()  # different members really differ


def test_spread_is_invariant_and_mean_forces_rotate():
    group, atoms = committee(), water_cluster(4, seed=3)
    R = random_rotation(5)
    before, after = group.predict([atoms]), group.predict([rotated(atoms, R, shift=(1.0, -2.0, 0.5))])
    np.testing.assert_allclose(after["forces_std"][0], before["forces_std"][0], atol=1e-9)
    np.testing.assert_allclose(after["energy_std"], before["energy_std"], atol=1e-9)
    np.testing.assert_allclose(after["forces"][0], before["forces"][0] @ R.T, atol=1e-9)


def test_mean_forces_are_minus_the_gradient_of_the_mean_energy():
    group, atoms = committee(n=2), water_cluster(3, seed=1)
    forces = group.predict([atoms])["forces"][0]
    step, numeric = 1e-5, np.zeros_like(forces)
    for i in range(len(atoms)):
        for d in range(3):
            shifted = [atoms.copy(), atoms.copy()]
            shifted[0].positions[i, d] += step
            shifted[1].positions[i, d] -= step
            e = group.predict(shifted)["energy"]
            numeric[i, d] = -(e[0] - e[1]) / (2 * step)
    np.testing.assert_allclose(forces, numeric, atol=1e-6)


def test_members_must_agree():
    with pytest.raises(ValueError, match="at least 2"):
        Committee([make_model("so3net")])
    with pytest.raises(ValueError, match="cutoff"):
        Committee([make_model("so3net"), make_model("so3net", cutoff=4.0)])


def test_checkpoint_round_trip(tmp_path):
    group, atoms = committee("schnet", 2), water_cluster(3)
    save_committee(tmp_path / "best.pt", group, {}, {})
    loaded = load_model(tmp_path / "best.pt")
    assert isinstance(loaded, Committee) and len(loaded) == 2
    a, b = group.predict([atoms]), loaded.predict([atoms])
    for key in a:
        np.testing.assert_allclose(np.asarray(b[key], dtype=float), np.asarray(a[key], dtype=float), atol=1e-12)
    torch.load(tmp_path / "best.pt", weights_only=True)  # loadable without pickled objects


def test_calculator_reports_spread_and_warns_once():
    group, atoms = committee(), water_cluster(3)
    atoms.calc = EquipropCalculator(group, forces_std_warning=1e-6)
    with pytest.warns(UserWarning, match="forces_std_warning"):
        atoms.get_potential_energy()
    expected = group.predict([atoms])
    assert atoms.calc.results["energy_std"] == pytest.approx(float(expected["energy_std"][0]))
    np.testing.assert_allclose(atoms.calc.results["forces_std"], expected["forces_std"][0])
    atoms.positions[0, 0] += 0.01
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise
        atoms.get_forces()
    with pytest.raises(ValueError, match="committee"):
        EquipropCalculator(make_model("so3net"), forces_std_warning=0.1)


def test_train_ensemble_end_to_end(slice_file, tmp_path):
    out = tmp_path / "committee"
    args = ["train", "--data", str(slice_file), "--ensemble", "2", "--epochs", "2", "--test-fraction", "0.25",
            "--out", str(out), *SMALL]
    assert main(args) == 0
    group = load_model(out / "best.pt")
    assert isinstance(group, Committee) and len(group) == 2
    first, second = (torch.load(out / f"member-{k}" / "best.pt", weights_only=True) for k in range(2))
    assert first["config"]["seed"] == 0 and second["config"]["seed"] == 1  # different seeds ...
    assert first["config"]["split_seed"] == second["config"]["split_seed"] == 0  # ... one split
    assert not torch.equal(first["state_dict"]["energy_head.net.0.weight"], second["state_dict"]["energy_head.net.0.weight"])
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["n_structures"] == 6 and -1 <= calibration["spearman_forces"] <= 1
    assert json.loads((out / "test_metrics.json").read_text())["forces"]["mae"] > 0

    frames = tmp_path / "in.xyz"
    ase.io.write(frames, ase.io.read(slice_file, ":3"))
    assert main(["predict", str(out / "best.pt"), str(frames), str(tmp_path / "pred.xyz")]) == 0
    predicted = ase.io.read(tmp_path / "pred.xyz", ":")
    for atoms in predicted:
        assert atoms.arrays["pred_forces_std"].shape == (len(atoms),)
        assert atoms.arrays["pred_charges_std"].shape == (len(atoms),)
        assert np.ndim(atoms.info["pred_energy_std"]) == 0 and np.ndim(atoms.info["pred_dipole_std"]) == 0
    assert main(["evaluate", str(out / "best.pt"), "--data", str(slice_file), "--json"]) == 0
    evaluated = json.loads((out / "evaluate_water24" / "metrics.json").read_text())
    assert evaluated["calibration"]["n_structures"] == 24
    assert main(["check", str(out / "best.pt"), "--data", str(frames)]) == 0

    # resume: a finished member is kept, an unfinished one continues
    (out / "member-1" / "test_metrics.json").unlink()
    before = torch.load(out / "member-0" / "best.pt", weights_only=True)["state_dict"]
    assert main(["train", "--resume", str(out), "--epochs", "3"]) == 0
    after = torch.load(out / "member-0" / "best.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (out / "member-1" / "test_metrics.json").is_file()


def test_every_member_trains_an_epoch_when_time_runs_out(slice_file, tmp_path):
    """A budget the first member uses up must not leave the next with nothing (no best.pt, no committee)."""
    out = tmp_path / "hurried"
    args = ["train", "--data", str(slice_file), "--ensemble", "2", "--epochs", "5", "--max-time", "0.001",
            "--test-fraction", "0.25", "--out", str(out), *SMALL]
    assert main(args) == 0
    for k in range(2):
        rows = (out / f"member-{k}" / "metrics.csv").read_text().splitlines()
        assert len(rows) == 2, rows  # header and exactly one epoch: the floor, and no more
        assert torch.load(out / f"member-{k}" / "best.pt", weights_only=True)["config"]["max_time"] == pytest.approx(0.0005)
    assert len(load_model(out / "best.pt")) == 2
