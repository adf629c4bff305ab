"""equiprop learn's bookkeeping, with a stand-in for DFT: rounds, resume after an interruption, honest scores."""

import json

import numpy as np
import pytest

from conftest import SMALL
from equiprop.cli.main import main
from equiprop.data.io import read_structures, write_structures
from equiprop.learn.loop import LearnConfig, learn, save_config, training_frames
from equiprop.learn.run import train_committee

TINY = {"features": 8, "interactions": 1, "n_rbf": 8, "cutoff": 3.0, "epochs": 2, "batch_size": 8}
EXPLORE = {"sizes": [2, 3], "temperatures": [300], "md": {"duration_fs": 10, "interval_fs": 2},
           "relax": {"steps": 30, "fmax": 10.0}}


class StandInDFT:
    """Labels = the committee's own predictions shifted by known amounts; can fail after ``fail_after`` frames."""

    def __init__(self, fail_after=None):
        self.fail_after, self.calls = fail_after, 0

    def __call__(self, selected, labelled):
        done = len(read_structures(labelled)) if labelled.is_file() else 0
        frames = read_structures(selected)
        out = read_structures(labelled) if done else []
        for atoms in frames[done:]:
            if self.fail_after is not None and len(out) >= self.fail_after:
                write_structures(labelled, out, overwrite=True)
                raise KeyboardInterrupt  # as if the session ended mid-round
            atoms.info["dft_energy"] = atoms.info["pred_energy"] + 0.01 * len(atoms)
            atoms.arrays["dft_forces"] = atoms.arrays["pred_forces"] + 0.05
            atoms.info["dft_dipole"] = atoms.info["pred_dipole"]
            atoms.arrays["dft_hirshfeld"] = atoms.arrays["pred_charges"]
            out.append(atoms)
        write_structures(labelled, out, overwrite=True)
        self.calls += 1
        return []


def config(tmp_path, base, rounds=1):
    return LearnConfig(out=str(tmp_path / "learn"), rounds=rounds, base_data=str(base), ensemble=2, train_time=30,
                       train=TINY, select=3, low=0.0, explore=EXPLORE)


def trainer(values, resume):
    return train_committee(values, resume, log=lambda m: None)


def test_rounds_resume_and_score_honestly(slice_file, tmp_path):
    (tmp_path / "learn").mkdir()
    with pytest.raises(KeyboardInterrupt):
        learn(config(tmp_path, slice_file), trainer, StandInDFT(fail_after=1), log=lambda m: None)
    round0 = tmp_path / "learn" / "round-0"
    record = json.loads((round0 / "round.json").read_text())
    assert record["stage"] == "selected" and record["n_selected"] == 3
    selected_before = (round0 / "selected.xyz").read_text()
    assert len(read_structures(round0 / "labelled.xyz")) == 1

    records = learn(config(tmp_path, slice_file), trainer, StandInDFT(), log=lambda m: None)  # resumed
    assert (round0 / "selected.xyz").read_text() == selected_before  # not explored again
    assert records[0]["stage"] == "done" and records[0]["n_labelled"] == 3
    assert records[0]["forces_rmse"] == pytest.approx(0.05, rel=1e-5)  # the stand-in's known force offset
    assert records[0]["energy_mae_per_atom"] == pytest.approx(0.01, rel=1e-3)
    for atoms in read_structures(round0 / "selected.xyz"):
        assert atoms.info["sample"] in ("minimum", "md") and atoms.arrays["pred_forces_std"].shape == (len(atoms),)
        assert atoms.info["score"] == pytest.approx(atoms.arrays["pred_forces_std"].max(), rel=1e-5)

    # a second round trains on the base data plus round 0's labels, without their predictions
    frames = training_frames(config(tmp_path, slice_file, rounds=2), 1)
    assert len(frames) == 24 + 3 and not any(k.startswith("pred_") for a in frames for k in {**a.info, **a.arrays})
    records = learn(config(tmp_path, slice_file, rounds=2), trainer, StandInDFT(), log=lambda m: None)
    assert [r["stage"] for r in records] == ["done", "done"] and records[1]["n_training_frames"] == 27
    csv = (tmp_path / "learn" / "learning_curve.csv").read_text().splitlines()
    assert len(csv) == 3 and (tmp_path / "learn" / "learning_curve.png").is_file()
    save_config(config(tmp_path, slice_file, rounds=2), tmp_path / "learn")
    assert main(["learn", str(tmp_path / "learn"), "--export", str(tmp_path / "sampled.xyz")]) == 0
    exported = read_structures(tmp_path / "sampled.xyz")
    assert [a.info["round"] for a in exported] == [0, 0, 0, 1, 1, 1]
    assert not any(k.startswith("pred_") for a in exported for k in {**a.info, **a.arrays})
    assert all("dft_energy" in a.info and a.info["sample"] in ("md", "minimum") for a in exported)
    # an existing export is replaced only when asked
    assert main(["learn", str(tmp_path / "learn"), "--export", str(tmp_path / "sampled.xyz")]) == 2
    assert main(["learn", str(tmp_path / "learn"), "--export", str(tmp_path / "sampled.xyz"), "--overwrite"]) == 0


def test_learn_command_refuses_to_clobber_and_checks_its_config(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "learn.yaml").write_text("rounds: 1\n")
    assert main(["learn", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("round: 3\n")
    assert main(["learn", str(tmp_path / "other"), "--config", str(bad)]) == 2
    assert "unknown field 'round'" in capsys.readouterr().err
    assert main(["learn", str(tmp_path / "other"), "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such config file" in capsys.readouterr().err
    assert main(["learn", str(out), "--resume", "--ensemble", "5"]) == 2
    assert "cannot change ensemble" in capsys.readouterr().err


def test_schedule_changes_settings_from_its_round_on_and_is_checked(tmp_path, capsys):
    from equiprop.learn.loop import LearnConfig

    config = LearnConfig(select=40, per_size=None, explore={"sizes": [2, 3], "starts_per_size": 1},
                         schedule={2: {"per_size": 4}, 4: {"select": 44, "explore": {"starts_per_size": 3}}})
    rounds = [config.for_round(k) for k in range(6)]
    assert [r.per_size for r in rounds] == [None, None, 4, 4, 4, 4]
    assert [r.select for r in rounds] == [40, 40, 40, 40, 44, 44]
    assert rounds[5].explore == {"sizes": [2, 3], "starts_per_size": 3}  # merged, not replaced
    assert config.explore == {"sizes": [2, 3], "starts_per_size": 1}  # the recipe itself is unchanged
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule:\n  3: {seed: 7}\n")
    assert main(["learn", str(tmp_path / "run"), "--config", str(bad)]) == 2
    assert "schedule: 3: 'seed' cannot change between rounds" in capsys.readouterr().err


def test_an_interrupted_exploration_resumes_after_its_last_finished_stage(slice_file, tmp_path, monkeypatch):
    import equiprop.learn.explore as exploring
    from equiprop.learn.loop import LearnConfig as Config

    committee, _ = trainer({**TINY, "epochs": 1, "data": str(slice_file), "ensemble": 2,
                            "out": str(tmp_path / "committee")}, False)
    settings = Config(explore={**EXPLORE, "temperatures": [200, 300]}).explore_settings()
    whole = exploring.explore(committee, settings, seed=3, log=lambda m: None)

    real_md = exploring.run_replicas
    calls = {"md": 0}

    def md_that_stops_at_300K(starts, calc, md, **kwargs):
        calls["md"] += 1
        if md.temperature == 300:
            raise KeyboardInterrupt  # the session ends during the second temperature
        return real_md(starts, calc, md, **kwargs)

    monkeypatch.setattr(exploring, "run_replicas", md_that_stops_at_300K)
    cache = tmp_path / "explore"
    with pytest.raises(KeyboardInterrupt):
        exploring.explore(committee, settings, seed=3, log=lambda m: None, cache=cache)
    assert sorted(p.name for p in cache.iterdir()) == ["md-200K.json", "md-200K.xyz", "relax.json", "relax.xyz"]

    monkeypatch.setattr(exploring, "run_replicas", real_md)
    monkeypatch.setattr(exploring, "relax", lambda *a: pytest.fail("relaxed again"))
    resumed = exploring.explore(committee, settings, seed=3, log=lambda m: None, cache=cache)
    assert [a.info["trajectory"] for a in resumed.candidates] == [a.info["trajectory"] for a in whole.candidates]
    for a, b in zip(resumed.candidates, whole.candidates):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-6)
    assert resumed.stops == whole.stops


def test_exploring_with_an_ion_keeps_its_charge_and_a_wrong_ion_is_refused_at_once(slice_file, tmp_path, capsys):
    """Every explored frame of an ``ion`` round is the ion and its waters with ``info["charge"]`` set (the
    labeller and the next committee read it); an unknown ion stops before any training."""
    import equiprop.learn.explore as exploring
    from equiprop.learn.loop import LearnConfig as Config

    committee, _ = trainer({**TINY, "epochs": 1, "data": str(slice_file), "ensemble": 2,
                            "out": str(tmp_path / "committee")}, False)
    settings = Config(explore={**EXPLORE, "sizes": [2], "ion": "OH-"}).explore_settings()
    found = exploring.explore(committee, settings, seed=3, log=lambda m: None)
    assert found.candidates
    for atoms in found.candidates:
        assert atoms.info["charge"] == -1 and atoms.get_chemical_formula(mode="hill") == "H5O3"

    path = tmp_path / "learn.yaml"
    path.write_text("explore: {ion: H3O+}\nschedule: {1: {explore: {ion: NH4+}}}\n")
    assert main(["learn", str(tmp_path / "out"), "--config", str(path)]) == 2
    assert "explore: ion 'NH4+' (round 1 on)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
