"""Data-parallel training under torchrun (gloo, two CPU processes) against one process."""

import csv
import os
import signal
import subprocess
import sys

import pytest
import torch

from equiprop.cli.main import main
from equiprop.data.split import split_indices
from equiprop.models.checkpoint import load_checkpoint
from equiprop.train.distributed import Ranks, shard

from conftest import SMALL


def _rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _torchrun(args, timeout=240):
    """torchrun with two ranks (~10 s here); on a hang, kill torchrun and its ranks and fail with their output."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two ranks share the two cores
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "equiprop"]
    process = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the ranks too: they would outlive torchrun
        stdout, stderr = process.communicate()
        pytest.fail(f"torchrun {' '.join(args)} did not finish in {timeout} s:\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_two_ranks_train_exactly_like_one_process(slice_file, tmp_path):
    """Same weights, EMA, losses and validation metrics; one set of outputs; a rank with no share works;
    resuming under torchrun continues exactly."""
    n_train = len(split_indices(24).train)
    batch = n_train - 1  # the last global batch has one structure: rank 1 gets none and runs a placeholder
    # --lr: the tolerances below hold at this rate; AdamW turns the rounding-level gradient of the charge head's
    # last bias (zero under the charge constraint) into steps proportional to the rate
    flags = [*SMALL, "--batch-size", str(batch), "--dtype", "float64", "--data", str(slice_file), "--lr", "2e-3"]
    single, ranks2 = tmp_path / "single", tmp_path / "ranks2"
    assert main(["train", *flags, "--epochs", "2", "--out", str(single), "--num-workers", "2"]) == 0  # with workers
    done = _torchrun(["train", *flags, "--epochs", "1", "--out", str(ranks2)])
    assert done.returncode == 0, done.stderr[-4000:]
    done = _torchrun(["train", "--resume", str(ranks2), "--epochs", "2"])
    assert done.returncode == 0, done.stderr[-4000:]

    one, two = load_checkpoint(single / "last.pt"), load_checkpoint(ranks2 / "last.pt")
    assert one["training"]["progress"]["step"] == two["training"]["progress"]["step"] == 4
    for name, value in one["state_dict"].items():
        assert torch.allclose(value, two["state_dict"][name], rtol=1e-7, atol=1e-9), name
    best_one, best_two = load_checkpoint(single / "best.pt"), load_checkpoint(ranks2 / "best.pt")
    for name, value in best_one["state_dict"].items():
        assert torch.allclose(value, best_two["state_dict"][name], rtol=1e-7, atol=1e-9), name
    rows_one, rows_two = _rows(single), _rows(ranks2)
    assert len(rows_two) == 2  # written once per epoch, by rank 0 only
    for a, b in zip(rows_one, rows_two):
        for key in a:
            if key != "seconds":
                assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-9), key
    assert sorted(p.name for p in ranks2.iterdir()) == sorted(p.name for p in single.iterdir())
    assert done.stderr.count("epoch 2:") == 1  # one log


def test_two_compiled_ranks_train_like_one_process(slice_file, tmp_path):
    """``--compile`` under torchrun: the compiled steps bypass DDP, so their gradients are averaged by hand;
    without that average the ranks' weights part at the first step. (The single process runs eagerly: in
    float64 compiled and eager steps agree far inside the tolerance, and only the ranks pay for compiling.)"""
    flags = [*SMALL, "--model", "schnet", "--dtype", "float64", "--data", str(slice_file), "--epochs", "1"]
    single, ranks2 = tmp_path / "single", tmp_path / "ranks2"
    assert main(["train", *flags, "--out", str(single)]) == 0
    done = _torchrun(["train", *flags, "--compile", "--out", str(ranks2)], timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    one, two = load_checkpoint(single / "last.pt"), load_checkpoint(ranks2 / "last.pt")
    for name, value in one["state_dict"].items():
        assert torch.allclose(value, two["state_dict"][name], rtol=1e-7, atol=1e-9), name


def test_shards_cover_each_batch_once():
    indices = list(range(11))
    parts = [shard(indices, Ranks(rank, 3)) for rank in range(3)]
    assert [len(p) for p in parts] == [4, 4, 3] and sorted(sum((list(p) for p in parts), [])) == indices


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_gpu_is_a_clear_error(slice_file, tmp_path, capsys):
    assert main(["train", "--data", str(slice_file), "--device", "cuda", "--out", str(tmp_path / "run"), *SMALL]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
