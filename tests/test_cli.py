"""The command line through its entry point, on a small slice of the shipped data."""

import json
import os
import signal
import subprocess
import sys

import ase.io
import numpy as np
import pytest
import torch

from equiprop.cli.main import main
from equiprop.errors import InputError
from equiprop.train.config import TrainConfig
from equiprop.train.loop import TrainingStopped
from equiprop.train.run import train

from conftest import SMALL


def test_train_writes_a_complete_run(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "metrics.csv", "best.pt", "last.pt", "test_metrics.json", "summary.md"} <= names
    assert {f"parity_{t}.png" for t in ("charges", "dipole", "energy", "forces")} | {"parity.png"} <= names
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3 and "val_forces_mae" in rows[0] and "train_loss" in rows[0]
    payload = torch.load(run_dir / "best.pt", weights_only=True)  # plain tensors and primitives only
    assert payload["model"] == "schnet" and payload["hparams"]["elements"] == ["H", "O"]
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics["energy"]["unit"] == "meV/atom" and np.isfinite(metrics["forces"]["mae"])


def test_existing_run_dir_is_refused(run_dir, slice_file, tmp_path, capsys):
    args = ["train", "--data", str(slice_file), "--epochs", "1", "--out", str(run_dir), *SMALL]
    assert main(args) == 2
    assert "the run directory exists; pass --resume" in capsys.readouterr().err
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("...")
    assert main(["train", "--data", str(slice_file), "--out", str(precious), "--overwrite", *SMALL]) == 2
    assert "is not an equiprop run directory" in capsys.readouterr().err
    assert (precious / "chapter1.tex").exists()


def test_config_typo_suggests(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("batch_sise: 8\n")
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "unknown config field 'batch_sise'; did you mean 'batch_size'?" in err and err.count("\n") == 1


def test_sh_lmax_out_of_range_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["train", "--lmax", "1", "--sh-lmax", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "sh_lmax must be an integer from lmax to 2 * lmax (1 to 2), got 3" in err and err.count("\n") == 1
    assert not out.exists()


def test_resume_continues_at_the_exact_step(slice_file, tmp_path):
    def config(out):
        return TrainConfig(model="schnet", data=str(slice_file), epochs=2, out=str(out), features=8, interactions=1,
                           n_rbf=8, batch_size=4, cutoff=3.0, targets=["charges", "energy", "forces"])

    quiet = lambda message: None  # noqa: E731
    train(config(tmp_path / "straight"), log=quiet)

    def interrupt(trainer):  # a real Ctrl-C, in the middle of epoch 1
        if trainer.progress.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingStopped, match="interrupted at epoch 1, step 3") as stop:
        train(config(tmp_path / "cut"), log=quiet, on_step=interrupt)
    assert stop.value.code == 130
    train(config(tmp_path / "cut"), resume=True, log=quiet)
    straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert resumed["training"]["progress"]["step"] == straight["training"]["progress"]["step"]
    for name, value in straight["state_dict"].items():
        assert torch.allclose(resumed["state_dict"][name], value, atol=1e-6), name
    rows = (tmp_path / "cut" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]


def test_budget_schedule_anneals_to_min_lr_by_the_end_of_the_run(slice_file, tmp_path):
    from equiprop.train.loop import Progress, budget_lr

    config = TrainConfig(model="schnet", data=str(slice_file), epochs=2, out=str(tmp_path / "run"), features=8,
                         interactions=1, n_rbf=8, batch_size=4, cutoff=3.0, targets=["charges", "energy"],
                         lr_schedule="budget", min_lr=1e-4)  # lr: SchNet's default, 2e-3
    train(config, log=lambda m: None)
    lr = [float(r.split(",")[2]) for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert lr[0] == pytest.approx(1e-4 + (2e-3 - 1e-4) / 2) and lr[1] == pytest.approx(1e-4)  # half way, then the end
    # time counts as much as steps: 75 of 300 s spent after one step of ten
    timed = TrainConfig(epochs=10, max_time=300.0, lr=1e-2, min_lr=0.0, lr_schedule="budget")
    assert budget_lr(timed, Progress(step=1, elapsed=75.0), 1) == pytest.approx(0.75e-2)
    assert budget_lr(timed, Progress(step=5, elapsed=75.0), 1) == pytest.approx(0.5e-2)
    assert budget_lr(timed, Progress(step=5, elapsed=900.0), 1) == 0.0
    with pytest.raises(InputError, match="--lr-schedule 'cosine': choose plateau or budget"):
        TrainConfig(lr_schedule="cosine")
    # the default rate is the model's (measured), and a run records the one it used
    assert (TrainConfig().lr, TrainConfig(model="schnet").lr, TrainConfig(lr=3e-3).lr) == (1e-2, 2e-3, 3e-3)
    import yaml

    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["lr"] == 2e-3  # the default it resolved


def test_nan_loss_keeps_last_good_checkpoint(slice_file, tmp_path):
    cfg = TrainConfig(model="schnet", data=str(slice_file), epochs=3, out=str(tmp_path / "r"), features=8,
                      interactions=1, n_rbf=8, batch_size=8, cutoff=3.0, targets=["charges"])

    def poison(trainer):  # weights go bad during epoch 2
        if trainer.progress.epoch == 1 and trainer.progress.batch == 1:
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingStopped, match="non-finite loss at epoch 2") as stop:
        train(cfg, log=lambda m: None, on_step=poison)
    assert stop.value.code == 1
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert last["training"]["progress"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_nan_validation_loss_stops_and_keeps_last_good_checkpoint(slice_file, tmp_path):
    """The validated (moving-average) model goes bad while the trained one stays finite: only validation sees it."""
    cfg = TrainConfig(model="schnet", data=str(slice_file), epochs=3, out=str(tmp_path / "r"), features=8,
                      interactions=1, n_rbf=8, batch_size=8, cutoff=3.0, targets=["charges"])

    def poison(trainer):
        if trainer.progress.epoch == 1 and trainer.progress.batch == 1:
            with torch.no_grad():
                next(trainer.ema.module.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingStopped, match="non-finite validation loss at epoch 2") as stop:
        train(cfg, log=lambda m: None, on_step=poison)
    assert stop.value.code == 1
    last = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert last["training"]["progress"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["training"]["ema"].values() if v.is_floating_point())


def test_evaluate_json(run_dir, slice_file, capsys):
    assert main(["evaluate", str(run_dir / "best.pt"), "--data", str(slice_file), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n_structures"] == 24
    assert set(result["metrics"]) == {"charges", "dipole", "energy", "forces", "relative_energy"}
    assert result["metrics"]["dipole"]["mae_debye"] > result["metrics"]["dipole"]["mae"]
    assert all(os.path.exists(p) for p in result["plots"])


def test_relative_energies_match_predictions(run_dir, slice_file, tmp_path, capsys):
    """evaluate's isomer errors equal those computed by hand from predict's energies (3 of each size)."""
    assert main(["evaluate", str(run_dir / "best.pt"), "--data", str(slice_file), "--json"]) == 0
    reported = json.loads(capsys.readouterr().out)["metrics"]["relative_energy"]
    assert main(["predict", str(run_dir / "best.pt"), str(slice_file), str(tmp_path / "p.xyz")]) == 0
    frames = ase.io.read(tmp_path / "p.xyz", ":")
    errors = []
    for n in {len(a) for a in frames}:
        group = [a for a in frames if len(a) == n]
        low = min(group, key=lambda a: a.info["dft_energy"])
        errors += [(a.info["pred_energy"] - low.info["pred_energy"]) - (a.info["dft_energy"] - low.info["dft_energy"])
                   for a in group if a is not low]
    assert reported["n_pairs"] == len(errors) == 24 - 8 and reported["n_formulas"] == 8
    assert reported["mae_meV"] == pytest.approx(1000 * np.mean(np.abs(errors)), rel=1e-4, abs=1e-3)
    assert reported["mae"] == pytest.approx(reported["mae_meV"] / 43.364, rel=1e-3)  # 1 kcal/mol = 43.364 meV


def test_predict_keeps_keys_and_refuses_overwrite(run_dir, slice_file, tmp_path, capsys):
    out = tmp_path / "pred.xyz"
    assert main(["predict", str(run_dir / "best.pt"), str(slice_file), str(out)]) == 0
    frames = ase.io.read(out, ":")
    assert len(frames) == 24 and "dft_energy" in frames[0].info and "dft_hirshfeld" in frames[0].arrays
    assert frames[3].arrays["pred_forces"].shape == (len(frames[3]), 3) and frames[3].info["pred_dipole"].shape == (3,)
    assert abs(frames[3].arrays["pred_charges"].sum()) < 1e-5
    before = out.read_text()
    assert main(["predict", str(run_dir / "best.pt"), str(slice_file), str(out)]) == 2
    assert main(["predict", str(run_dir / "best.pt"), str(slice_file), str(slice_file)]) == 2
    assert out.read_text() == before
    assert "pass --overwrite" in capsys.readouterr().err


def test_check_passes_and_fails_on_tolerance(run_dir, slice_file, capsys):
    ckpt = str(run_dir / "best.pt")
    assert main(["check", ckpt, "--data", str(slice_file), "--n-structures", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["passed"] and set(result["max_deviation"]) == {"charges", "dipole", "energy", "forces"}
    assert result["units"]["energy"] == "eV/atom" and result["tolerance"] == 1e-4
    assert main(["check", ckpt, "--data", str(slice_file), "--n-structures", "4", "--tol", "0"]) == 1  # 0 is honoured
    assert "FAILED (tolerance 0e+00)" in capsys.readouterr().out
    assert main(["check", ckpt, "--data", str(slice_file), "--tol", "-1"]) == 2


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, c, t: ["evaluate", c, "--data", str(t / "missing.xyz")], "missing.xyz: no such file"),
        (lambda d, c, t: ["evaluate", c, "--data", str(_text_file(t))], "cannot read structures"),
        (lambda d, c, t: ["evaluate", c, "--data", str(d), "--energy-key", "E_pbe"], "no energy label: key 'E_pbe'"),
        (lambda d, c, t: ["predict", c, str(_methane(t)), str(t / "o.xyz")], "element 'C' (atom 0)"),
        (lambda d, c, t: ["evaluate", str(_foreign_checkpoint(c, t)), "--data", str(d)], "weights do not fit"),
        (lambda d, c, t: ["evaluate", str(_text_file(t)), "--data", str(d)], "not a readable checkpoint"),
        (lambda d, c, t: ["evaluate", str(_old_checkpoint(c, t, "so3net")), "--data", str(d)], "written by an older"),
    ],
)
def test_bad_input_is_one_line_exit_2(make_args, message, slice_file, run_dir, tmp_path, capsys):
    assert main(make_args(slice_file, str(run_dir / "best.pt"), tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.xyz").exists()


def _text_file(tmp):
    path = tmp / "notes.txt"
    path.write_text("not a structure\n")
    return path


def _methane(tmp):
    from ase.build import molecule

    path = tmp / "ch4.xyz"
    ase.io.write(path, molecule("CH4"))
    return path


def _foreign_checkpoint(ckpt, tmp):
    payload = torch.load(ckpt, weights_only=True)
    payload["hparams"]["features"] = 16  # the weights are for 8 features
    path = tmp / "foreign.pt"
    torch.save(payload, path)
    return path


def _old_checkpoint(ckpt, tmp, model):
    payload = torch.load(ckpt, weights_only=True)
    payload["format"], payload["model"] = "equiprop-checkpoint-1", model
    path = tmp / f"old-{model}.pt"
    torch.save(payload, path)
    return path


def test_old_schnet_checkpoints_still_load(run_dir, tmp_path):
    from equiprop.models.checkpoint import load_model

    old = load_model(_old_checkpoint(run_dir / "best.pt", tmp_path, "schnet"))
    new = load_model(run_dir / "best.pt")
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), new.state_dict().values()))


def test_console_script_json_is_one_object(run_dir, slice_file):
    done = subprocess.run([sys.executable, "-m", "equiprop", "check", str(run_dir / "best.pt"), "--data",
                           str(slice_file), "--n-structures", "2", "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["passed"] is True


def test_json_errors_are_json(run_dir, tmp_path, capsys):
    assert main(["evaluate", str(run_dir / "best.pt"), "--data", str(tmp_path / "nope.xyz"), "--json"]) == 2
    assert "no such file" in json.loads(capsys.readouterr().out)["error"]
