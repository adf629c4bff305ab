"""Training steps replayed from CUDA graphs (on by default on a GPU) train as eager steps do.

The graphs need a GPU; the padded step they record is also checked on the CPU.
"""

import csv

import ase.io
import numpy as np
import pytest
import torch

from conftest import SMALL
from equiprop.cli.main import main
from equiprop.models.checkpoint import load_model

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def train_losses(run) -> list[float]:
    with open(run / "metrics.csv") as handle:
        return [float(row["train_loss"]) for row in csv.DictReader(handle)]


def train(run, data, *extra) -> None:
    args = ["train", "--model", "so3net", "--lmax", "2", "--data", str(data), "--epochs", "3", "--dtype", "float64",
            "--device", "cuda", "--out", str(run), *SMALL, "--batch-size", "5", *extra]
    assert main(args) == 0


@needs_cuda
@pytest.mark.parametrize("max_graphs", [16, 1], ids=["graphs", "one-graph-then-eager"])
def test_graphed_training_follows_eager_training(slice_file, tmp_path, monkeypatch, max_graphs):
    """Three epochs of SO3Net on every target in float64: the same losses, metrics and weights.

    Batch 5 over the training split of 24 clusters: batches of several padded
    shapes, and a last, partial batch (empty structure slots).
    """
    monkeypatch.setattr("equiprop.data.padding.MAX_GRAPHS", max_graphs)
    train(tmp_path / "eager", slice_file, "--no-cuda-graphs")
    train(tmp_path / "graphed", slice_file)  # on by default on a GPU
    assert train_losses(tmp_path / "graphed") == pytest.approx(train_losses(tmp_path / "eager"), rel=1e-6)
    with open(tmp_path / "eager" / "metrics.csv") as a, open(tmp_path / "graphed" / "metrics.csv") as b:
        for eager, graphed in zip(csv.DictReader(a), csv.DictReader(b)):
            for key in eager:
                if key.endswith("_mae") or key.endswith("_rmse"):
                    assert float(graphed[key]) == pytest.approx(float(eager[key]), rel=1e-6), key
    assert_same_predictions(tmp_path / "eager", tmp_path / "graphed", slice_file)


def assert_same_predictions(run_a, run_b, data) -> None:
    """The two runs' last models predict the same energies, forces, dipoles and charges for the first 6 clusters."""
    frames = ase.io.read(data, ":6")
    a, b = (load_model(run / "last.pt").predict(frames) for run in (run_a, run_b))
    for key in ("energy", "forces", "dipole", "charges"):
        flat_a, flat_b = (np.concatenate([np.ravel(v) for v in p[key]]) for p in (a, b))
        assert np.allclose(flat_b, flat_a, rtol=1e-6, atol=1e-9), key


class EagerSteps:
    """Stands in for :class:`GraphedSteps` on the CPU: the same padded step, run eagerly."""

    def __init__(self, step, n_targets, device):
        self.step, self.n_graphs, self.replays, self.eager_steps = step, 0, 0, 0

    def __call__(self, padded, shape):
        self.eager_steps += 1
        return self.step(padded)


class EagerInference:
    """Stands in for :class:`GraphedInference` on the CPU: the same padded outputs, computed eagerly."""

    def __init__(self, model, structures):
        self.model, self.structures = model, structures

    def __call__(self, batch):
        from equiprop.models.graphed import detached_outputs, unpad
        from equiprop.data.padding import PaddedShape, pad_batch

        padded = pad_batch(batch, {}, PaddedShape.of(batch, self.structures), self.model.cutoff)
        return unpad(detached_outputs(self.model, padded.batch, with_forces=True), batch.positions.shape[0], batch.n_structures)


def test_padded_steps_train_as_eager_steps_on_cpu(slice_file, tmp_path, monkeypatch):
    """What the CUDA graphs record (padded batch, masked loss, capturable AdamW with a tensor learning rate;
    padded validation), run eagerly on the CPU in float64: the losses, metrics and weights of the eager
    trainer, and a checkpoint with float learning rates."""
    def run(name, *extra):
        args = ["train", "--model", "so3net", "--lmax", "1", "--data", str(slice_file), "--epochs", "3", "--dtype",
                "float64", "--out", str(tmp_path / name), *SMALL, "--batch-size", "5", *extra,
                "--lr", "2e-3"]  # the rate the tolerances below were set at: larger steps grow rounding differences
        assert main(args) == 0

    run("eager")
    for module in ("loop", "run"):
        monkeypatch.setattr(f"equiprop.train.{module}.use_cuda_graphs", lambda *args: True)
    monkeypatch.setattr("equiprop.train.loop.GraphedSteps", EagerSteps)
    monkeypatch.setattr("equiprop.train.loop.GraphedInference", EagerInference)  # validation
    run("padded", "--cuda-graphs")
    with open(tmp_path / "eager" / "metrics.csv") as a, open(tmp_path / "padded" / "metrics.csv") as b:
        rows = list(zip(csv.DictReader(a), csv.DictReader(b)))
    assert len(rows) == 3
    for eager, padded in rows:
        for key in (k for k in eager if k != "seconds"):
            # the same up to the learning rate's float32 rounding (5e-8 relative; a wrong mask or count differs by >1e-3)
            assert float(padded[key]) == pytest.approx(float(eager[key]), rel=1e-6, abs=1e-12), key
    assert_same_predictions(tmp_path / "eager", tmp_path / "padded", slice_file)
    state = torch.load(tmp_path / "padded" / "last.pt", weights_only=True)["training"]["optimizer"]
    assert all(type(group["lr"]) is float for group in state["param_groups"])


def test_scheduler_changes_the_recorded_learning_rate_in_place():
    """A graph reads the learning rate from one tensor: the scheduler and a loaded state must keep that tensor."""
    from equiprop.train.optim import adamw, optimizer_state, set_lr_kind

    model = torch.nn.Linear(3, 2)
    optimizer = adamw(model, 1e-2, 0.0, capturable=True)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    recorded = optimizer.param_groups[0]["lr"]
    for loss in (1.0, 2.0, 3.0):
        scheduler.step(loss)
    assert optimizer.param_groups[0]["lr"] is recorded and float(recorded) == pytest.approx(2.5e-3)
    state = optimizer_state(optimizer)
    assert type(state["param_groups"][0]["lr"]) is float and optimizer.param_groups[0]["lr"] is recorded
    fresh = adamw(model, 1e-2, 0.0, capturable=True)
    fresh.load_state_dict(state)
    set_lr_kind(fresh, capturable=True)
    assert torch.is_tensor(fresh.param_groups[0]["lr"]) and float(fresh.param_groups[0]["lr"]) == pytest.approx(2.5e-3)


@needs_cuda
def test_runs_resume_across_graphed_and_eager_steps(slice_file, tmp_path):
    """Checkpoints hold float learning rates: an eager run resumes with CUDA graphs, and that one without."""
    run = tmp_path / "run"
    train(run, slice_file, "--epochs", "1", "--no-cuda-graphs")
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0  # graphs by default
    assert main(["train", "--resume", str(run), "--epochs", "3", "--no-cuda-graphs"]) == 0
    losses = train_losses(run)
    assert len(losses) == 3 and losses[2] < losses[0]


@needs_cuda
@pytest.mark.parametrize("max_graphs", [16, 1], ids=["graphs", "one-graph-then-eager"])
def test_graphed_inference_predicts_as_eager_inference(tmp_path, monkeypatch, max_graphs):
    """``predict`` on a GPU replays graphs (batches of 5: several padded shapes, a partial last batch) and
    gives the eager predictions (float64)."""
    import equiprop
    from equiprop import datasets
    from equiprop.models.graphed import GraphedInference

    monkeypatch.setattr("equiprop.data.padding.MAX_GRAPHS", max_graphs)
    torch.manual_seed(0)
    model = equiprop.SO3Net(["H", "O"], cutoff=3.5, lmax=2, features=8, interactions=2,
                            targets=["charges", "dipole", "energy", "forces"], dtype="float64").cuda()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    frames = datasets.water_pbe0()[:23]
    graphs = GraphedInference(model, 5)
    graphed = model.predict(frames, batch_size=5, graphs=graphs)
    graphed_again = model.predict(frames, batch_size=5, graphs=graphs)  # replays only
    eager = model.predict(frames, batch_size=5, graphs=False)
    assert graphs.replays >= 5 if max_graphs > 1 else graphs.eager_calls >= 5
    for key in ("energy", "forces", "dipole", "charges"):
        for run in (graphed, graphed_again):
            flat, reference = (np.concatenate([np.ravel(v) for v in p[key]]) for p in (run, eager))
            assert np.allclose(flat, reference, rtol=1e-10, atol=1e-12), key


def test_inference_without_a_free_graph_runs_the_batch_eagerly(monkeypatch):
    """Past ``max_graphs`` shapes, ``GraphedInference`` runs the unpadded batch eagerly (checked on the CPU: no graph
    is ever recorded with ``max_graphs=0``): the eager predictions, float64."""
    import equiprop
    from equiprop import datasets
    from equiprop.models.graphed import GraphedInference

    monkeypatch.setattr(torch.cuda, "graph_pool_handle", lambda: None)
    torch.manual_seed(0)
    model = equiprop.SO3Net(["H", "O"], cutoff=3.5, lmax=1, features=8, interactions=2,
                            targets=["charges", "dipole", "energy", "forces"], dtype="float64")
    frames = datasets.water_pbe0()[:7]
    graphs = GraphedInference(model, 3, max_graphs=0)
    fallback, eager = model.predict(frames, batch_size=3, graphs=graphs), model.predict(frames, batch_size=3, graphs=False)
    assert graphs.eager_calls == 3 and graphs.replays == 0
    for key in ("energy", "forces", "dipole", "charges"):
        flat, reference = (np.concatenate([np.ravel(v) for v in p[key]]) for p in (fallback, eager))
        assert np.array_equal(flat, reference), key


@needs_cuda
def test_calculator_on_gpu_runs_dynamics_as_on_cpu():
    """Ten velocity-Verlet steps with the ASE calculator: graphed on the GPU, eager on the CPU, same trajectory."""
    import equiprop
    from ase.md.verlet import VelocityVerlet
    from ase.units import fs
    from conftest import water_cluster
    from equiprop.calculator import EquipropCalculator

    torch.manual_seed(0)
    model = equiprop.SO3Net(["H", "O"], cutoff=3.5, lmax=1, features=8, interactions=2, targets=["energy", "forces"],
                            dtype="float64")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    trajectories = {}
    for device in ("cpu", "cuda"):
        atoms = water_cluster(4, seed=3)
        atoms.calc = EquipropCalculator(model, device=device)
        VelocityVerlet(atoms, 0.5 * fs).run(10)
        trajectories[device] = atoms.positions.copy()
        model.cpu()
    assert np.allclose(trajectories["cuda"], trajectories["cpu"], rtol=0, atol=1e-9)


@pytest.mark.parametrize("extra, message", [
    (["--device", "cpu"], "needs a CUDA device"),
    (["--device", "cuda", "--compile"], "exclude each other"),
])
def test_cuda_graphs_refusals_are_clear(slice_file, tmp_path, capsys, extra, message):
    if "cuda" in extra and not torch.cuda.is_available():
        pytest.skip("the device check comes first without a GPU")
    code = main(["train", "--data", str(slice_file), "--epochs", "1", "--out", str(tmp_path / "run"), *SMALL,
                 "--cuda-graphs", *extra])
    assert code != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before the run directory is made
