"""Shared, library-agnostic parts of the peer benchmarks (run_schnetpack.py, run_mace.py, run_nequip.py, run_dimenet.py).

Only needs numpy, torch and ase, which every peer venv has. It provides the
command line, reading the split folder, training-set statistics, the loss
(the same normalised, weighted MSE that equiprop uses), the time-budgeted
training loop, evaluation (MAE) and the inference timing, and the JSON report.
Each peer script supplies the library-specific parts: data conversion, model,
one optimisation step and one prediction.
"""

import argparse
import copy
import itertools
import json
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import ase.io
import numpy as np
import torch

TARGETS = ("energy", "forces", "dipole", "charges", "dipole_magnitude")
#: Training recipes every benchmarked model can get (``--recipe``); see :class:`Recipe`.
RECIPES = ("shared", "none")
SPLITS = ("train", "val", "test")
DEFAULT_KEYS = {"energy": "dft_energy", "forces": "dft_forces", "dipole": "dft_dipole", "charges": "dft_hirshfeld",
                "dipole_magnitude": "dipole_magnitude"}


# ----------------------------------------------------------------------------- command line


def build_parser(description: str, models: list[str], default_lr: float | None, default_grad_clip: float) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=models, default=models[0])
    p.add_argument("--split-dir", required=True, help="folder with train.xyz, val.xyz, test.xyz (extxyz)")
    p.add_argument("--budget", type=float, default=60.0, help="seconds of training steps (wall clock)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--cutoff", type=float, default=4.0)
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--interactions", type=int, default=3)
    p.add_argument("--lmax", type=int, default=2)
    p.add_argument("--targets", default="energy,forces,dipole,charges")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="result.json")
    p.add_argument("--lr", type=float, default=default_lr)
    p.add_argument("--grad-clip", type=float, default=default_grad_clip, help="max gradient norm; 0 disables")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup-batches", type=int, default=5, help="training steps left out of the throughput")
    p.add_argument("--recipe", choices=RECIPES, default="shared",
                   help="shared: equiprop's recipe for every model (moving average of the weights, learning rate "
                        "halved on a validation plateau, the best averaged weights on validation); none: constant "
                        "learning rate, no average, the last weights")
    p.add_argument("--ema-decay", type=float, default=0.99, help="shared recipe: moving-average decay")
    p.add_argument("--lr-factor", type=float, default=0.5, help="shared recipe: ReduceLROnPlateau factor")
    p.add_argument("--lr-patience", type=int, default=5, help="shared recipe: ReduceLROnPlateau patience (epochs)")
    p.add_argument("--min-lr", type=float, default=1e-5, help="shared recipe: ReduceLROnPlateau min_lr")
    p.add_argument("--inference-seconds", type=float, default=3.0, help="minimum time of the inference measurement")
    for target in TARGETS:  # --energy-weight, --energy-key, ... (equiprop's defaults)
        flag = target.replace("_", "-")
        p.add_argument(f"--{flag}-weight", type=float, default=0.03 if target == "energy" else 1.0)
        p.add_argument(f"--{flag}-key", default=DEFAULT_KEYS[target])
    return p


def parse_targets(text: str, supported: Iterable[str] = TARGETS) -> list[str]:
    targets = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise SystemExit(f"--targets: unknown or empty {unknown or text!r}; choose from {','.join(TARGETS)}")
    unsupported = [t for t in targets if t not in supported]
    if unsupported:
        raise SystemExit(f"--targets: {','.join(unsupported)} not supported by this peer (supported: {','.join(supported)})")
    return targets


LOAD_AT_START = os.getloadavg()


def setup_torch(args) -> None:
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(args.threads)
    except RuntimeError:  # already set
        pass
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)


# ----------------------------------------------------------------------------- data


@dataclass
class Frame:
    """One labelled structure in plain numpy (float64), keys already mapped; None where not trained."""

    atoms: "ase.Atoms"
    energy: float | None = None
    forces: np.ndarray | None = None  # [n, 3]
    dipole: np.ndarray | None = None  # [3]
    charges: np.ndarray | None = None  # [n]
    dipole_magnitude: float | None = None  # e*A

    @property
    def n_atoms(self) -> int:
        return len(self.atoms)


def read_split(split_dir: str, args) -> dict[str, list[Frame]]:
    """``{"train": [...], "val": [...], "test": [...]}`` from ``split_dir/{train,val,test}.xyz``."""
    out = {}
    for name in SPLITS:
        path = Path(split_dir) / f"{name}.xyz"
        if not path.exists():
            raise SystemExit(f"missing {path}")
        frames = []
        targets = parse_targets(args.targets)
        wanted = set(targets) | ({"energy"} if "forces" in targets else set())
        for k, a in enumerate(ase.io.read(path, index=":")):
            try:
                frames.append(Frame(
                    atoms=a,
                    energy=float(a.info[args.energy_key]) if "energy" in wanted else None,
                    forces=np.asarray(a.arrays[args.forces_key], dtype=np.float64).reshape(-1, 3) if "forces" in wanted else None,
                    dipole=np.asarray(a.info[args.dipole_key], dtype=np.float64).reshape(3) if "dipole" in wanted else None,
                    charges=np.asarray(a.arrays[args.charges_key], dtype=np.float64).reshape(-1) if "charges" in wanted else None,
                    dipole_magnitude=float(a.info[args.dipole_magnitude_key]) if "dipole_magnitude" in wanted else None,
                ))
            except KeyError as e:
                raise SystemExit(f"{path}: structure {k} has no label {e}") from None
        out[name] = frames
    return out


@dataclass
class TrainStats:
    """Training-set statistics: element reference energies and each target's loss scale."""

    elements: list[int]  # atomic numbers, sorted
    element_energies: dict[int, float]  # eV, least squares E ~ sum_Z n_Z e_Z (minimum norm)
    scales: dict[str, float]  # loss scale per target (see fit_train_stats)


def fit_train_stats(frames: list[Frame]) -> TrainStats:
    """Element energies by least squares, and each target's spread on the training set.

    Scales (identical to equiprop's loss scales): energy: RMS per-atom residual
    after the element energies (eV/atom); forces, dipole, charges: RMS of all
    components (eV/A, e*A, e). For pure water (n_H = 2 n_O everywhere) the
    element energies are not separately determined; the minimum-norm solution
    of numpy's lstsq fixes 2 e_H + e_O, which is all the energies depend on.
    """
    elements = sorted({int(z) for f in frames for z in f.atoms.numbers})
    counts = np.array([[np.count_nonzero(f.atoms.numbers == z) for z in elements] for f in frames], dtype=np.float64)

    def rms(x):
        value = float(np.sqrt(np.mean(np.square(x))))
        return value if value > 0 else 1.0

    scales, refs = {}, np.zeros(len(elements))
    if frames[0].energy is not None:
        energies = np.array([f.energy for f in frames])
        refs, *_ = np.linalg.lstsq(counts, energies, rcond=None)
        scales["energy"] = rms((energies - counts @ refs) / counts.sum(axis=1))
    for name in ("forces", "dipole", "charges", "dipole_magnitude"):
        if getattr(frames[0], name) is not None:
            scales[name] = rms(np.concatenate([np.ravel(getattr(f, name)) for f in frames]))
    return TrainStats(elements, {z: float(e) for z, e in zip(elements, refs)}, scales)


def batch_indices(n: int, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index chunks of one epoch (shuffled when ``rng`` is given; last batch may be smaller)."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


# ----------------------------------------------------------------------------- loss


def normalized_loss(pred: dict, ref: dict, n_atoms: torch.Tensor, scales: dict, weights: dict) -> torch.Tensor:
    """``sum_t w_t * mean(((pred_t - ref_t) / scale_t)^2)``, as in equiprop.

    Energy enters per atom: ``(E_pred - E_ref) / n_atoms`` per structure. Shapes:
    energy [B], forces [N, 3], dipole [B, 3], charges [N].
    """
    loss = 0.0
    for t, w in weights.items():
        diff = pred[t] - ref[t]
        if t == "energy":
            diff = diff / n_atoms.to(diff.dtype)
        loss = loss + w * (diff / scales[t]).pow(2).mean()
    return loss


# ----------------------------------------------------------------------------- training loop


@dataclass
class TrainLog:
    steps: int = 0
    structures: int = 0
    train_seconds: float = 0.0  # all training steps
    timed_seconds: float = 0.0  # steps after the warm-up
    timed_structures: int = 0
    last_loss: float = float("nan")
    losses: list = field(default_factory=list)  # (structures seen, mean loss of the epoch)


def train_for_budget(epoch_batches: Callable[[], Iterable], step: Callable[[object], tuple[int, float]],
                     budget_s: float, warmup_batches: int, n_train: int, log_every_s: float = 5.0,
                     recipe: "Recipe | None" = None) -> TrainLog:
    """Run optimisation steps until ``budget_s`` seconds of training steps have passed.

    ``epoch_batches()`` gives an iterable over one (shuffled) epoch; fetching a
    batch (collation) counts as part of the step. ``step(batch)`` does one
    optimisation step and returns ``(n_structures, loss)``. Throughput is timed
    over the steps after the first ``warmup_batches``. A ``recipe`` updates its
    average after every step (timed, as equiprop's is) and validates after every
    epoch, the last, partial one included (not timed, as in equiprop).
    """
    log = TrainLog()
    next_print = log_every_s
    while log.train_seconds < budget_s:
        it = iter(epoch_batches())
        epoch_losses = []
        while log.train_seconds < budget_s:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            n, loss = step(batch)
            if recipe is not None:
                recipe.after_step()
            dt = time.perf_counter() - t0
            log.steps += 1
            log.structures += n
            log.train_seconds += dt
            if log.steps > warmup_batches:
                log.timed_seconds += dt
                log.timed_structures += n
            epoch_losses.append(loss)
            if log.train_seconds >= next_print:
                print(f"  {log.train_seconds:6.1f} s  epoch {log.structures / n_train:6.2f}  loss {np.mean(epoch_losses):.4f}", flush=True)
                next_print += log_every_s
        if epoch_losses:
            log.last_loss = float(np.mean(epoch_losses))
            log.losses.append((log.structures, log.last_loss))
            if recipe is not None:
                recipe.end_of_epoch()
    return log


# ----------------------------------------------------------------------------- recipe


class Recipe:
    """The training recipe every benchmarked model gets (``--recipe``).

    ``shared`` is equiprop's (equiprop/train/loop.py, optim.py): a moving average
    of parameters and buffers with decay ``min(decay, (1 + n) / (10 + n))`` after
    n updates (the first copies), ReduceLROnPlateau on the validation loss of the
    averaged model after every epoch, and at the end the averaged weights of the
    best validation loss. ``none``: nothing; the last weights are the model's.
    ``validation_loss(model)`` is the peer's loss on the validation split.
    """

    def __init__(self, model: torch.nn.Module, optimizer, args, validation_loss: Callable[[torch.nn.Module], float]):
        self.shared, self.model, self.validation_loss = args.recipe == "shared", model, validation_loss
        self.average = copy.deepcopy(model) if self.shared else model
        self.decay, self.updates, self.best_loss, self.best_state, self.val_losses = args.ema_decay, 0, np.inf, None, []
        self.scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=args.lr_factor,
                                                                      patience=args.lr_patience, min_lr=args.min_lr)
                          if self.shared else None)
        pairs = list(zip(itertools.chain(self.average.parameters(), self.average.buffers()),
                         itertools.chain(model.parameters(), model.buffers())))
        self.floats = [(a.detach(), c.detach()) for a, c in pairs if a.is_floating_point()]
        self.others = [(a.detach(), c.detach()) for a, c in pairs if not a.is_floating_point()]

    @torch.no_grad()
    def after_step(self) -> None:
        if not self.shared:
            return
        n = self.updates
        for average, current in self.floats:
            average.copy_(current) if n == 0 else average.lerp_(current, 1.0 - min(self.decay, (1.0 + n) / (10.0 + n)))
        for average, current in self.others:
            average.copy_(current)
        self.updates += 1

    def end_of_epoch(self) -> None:
        if not self.shared:
            return
        loss = float(self.validation_loss(self.average))
        self.val_losses.append(loss)
        if not np.isfinite(loss):
            raise SystemExit(f"non-finite validation loss after epoch {len(self.val_losses)}")
        self.scheduler.step(loss)
        if loss < self.best_loss:
            self.best_loss, self.best_state = loss, copy.deepcopy(self.average.state_dict())

    def final_model(self) -> torch.nn.Module:
        """The model to test: the best averaged weights (shared), or the trained model as it is (none)."""
        if self.shared and self.best_state is not None:
            self.average.load_state_dict(self.best_state)
        return self.average

    def settings(self) -> dict:
        if not self.shared:
            return {"recipe": "none", "lr_schedule": "constant", "ema": False, "weights": "last"}
        return {"recipe": "shared", "lr_schedule": f"ReduceLROnPlateau(factor={self.scheduler.factor}, "
                f"patience={self.scheduler.patience}, min_lr={self.scheduler.min_lrs[0]:g}) on the validation loss",
                "ema": self.decay,
                "weights": "best averaged on validation", "validation_epochs": len(self.val_losses),
                "best_val_loss": self.best_loss}


def validation_loss(batches: Iterable, predict: Callable, scales: dict, weights: dict) -> float:
    """``sum_t w_t * mean(((pred_t - ref_t) / scale_t)^2)`` over ``batches`` (energy per atom), as the training loss.

    ``predict(batch)`` returns ``(pred, ref, n_atoms)`` as numpy dicts (the peers' evaluation predictors).
    """
    squares = {t: 0.0 for t in weights}
    counts = {t: 0 for t in weights}
    for batch in batches:
        pred, ref, n_atoms = predict(batch)
        for t in weights:
            diff = np.asarray(pred[t], dtype=np.float64) - np.asarray(ref[t], dtype=np.float64)
            if t == "energy":
                diff = diff / n_atoms
            squares[t] += float(np.sum((diff / scales[t]) ** 2))
            counts[t] += diff.size
    return sum(w * squares[t] / max(counts[t], 1) for t, w in weights.items())


# ----------------------------------------------------------------------------- evaluation


class MAE:
    """Accumulates absolute errors in report units (e, e*A, meV/atom, meV/A)."""

    NAMES = {"charges": "charges_e", "dipole": "dipole_eA", "energy": "energy_meV_per_atom", "forces": "forces_meV_per_A",
             "dipole_magnitude": "dipole_magnitude_eA", "energy_per_structure": "energy_meV"}

    def __init__(self, targets: list[str]):
        keys = list(targets) + (["energy_per_structure"] if "energy" in targets else [])
        self.sums = {t: 0.0 for t in keys}
        self.counts = {t: 0 for t in keys}

    def add(self, pred: dict, ref: dict, n_atoms: np.ndarray) -> None:
        for t in self.sums:
            source = "energy" if t == "energy_per_structure" else t
            diff = np.abs(np.asarray(pred[source], dtype=np.float64) - np.asarray(ref[source], dtype=np.float64))
            if t == "energy":
                diff = 1000.0 * diff / n_atoms
            elif t in ("forces", "energy_per_structure"):
                diff = 1000.0 * diff
            self.sums[t] += float(diff.sum())
            self.counts[t] += diff.size

    def result(self) -> dict:
        out = {self.NAMES[t]: None for t in TARGETS}
        for t in self.sums:
            out[self.NAMES[t]] = self.sums[t] / max(self.counts[t], 1)
        return out


def evaluate(batches: Iterable, predict: Callable, targets: list[str]) -> dict:
    """MAE over ``batches``; ``predict(batch)`` returns ``(pred, ref, n_atoms)`` as numpy dicts."""
    mae = MAE(targets)
    for batch in batches:
        pred, ref, n_atoms = predict(batch)
        mae.add(pred, ref, n_atoms)
    return mae.result()


def measure_inference(batches: list, forward: Callable, n_structures: int, n_atoms: int, min_seconds: float) -> dict:
    """Structures and atoms per second of ``forward(batch)`` over whole passes through ``batches``.

    One untimed pass first (warm-up); then whole passes until ``min_seconds``.
    """
    def sync():
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    for b in batches:
        forward(b)
    sync()
    passes, t0 = 0, time.perf_counter()
    while True:
        for b in batches:
            forward(b)
        sync()
        passes += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds:
            break
    return {
        "structures_per_s": passes * n_structures / elapsed,
        "atoms_per_s": passes * n_atoms / elapsed,
        "passes": passes,
        "seconds": elapsed,
    }


# ----------------------------------------------------------------------------- training and testing


@dataclass
class Outcome:
    """What :func:`train_and_test` gives back for the report."""

    model: torch.nn.Module  # the tested weights (the recipe's final model)
    recipe: Recipe
    log: TrainLog
    test_mae: dict
    val_mae: dict
    inference: dict
    val_loss: float


def train_and_test(args, model, optimizer, items: dict[str, list], collate: Callable[[list], object], step: Callable,
                   make_predict: Callable, make_forward: Callable, scales: dict, weights: dict, targets: list[str],
                   test_atoms: int) -> Outcome:
    """The loop every peer with per-structure items shares: train for the budget under the recipe, then test.

    ``items``: each split's prepared structures; ``collate(list)`` makes a batch of them (shuffled for
    training, in order for validation and testing, made once); ``step(batch)`` as in
    :func:`train_for_budget`; ``make_predict(model)`` gives the predictor of :func:`evaluate`,
    ``make_forward(model)`` the inference call :func:`measure_inference` times (the model in eval mode).
    """
    rng = np.random.default_rng(args.seed)
    train = items["train"]

    def epoch_batches():
        for idx in batch_indices(len(train), args.batch_size, rng):
            yield collate([train[i] for i in idx])

    def fixed_batches(part):
        return [collate([part[i] for i in idx]) for idx in batch_indices(len(part), args.batch_size, None)]

    test_batches, val_batches = fixed_batches(items["test"]), fixed_batches(items["val"])
    recipe = Recipe(model, optimizer, args, lambda m: validation_loss(val_batches, make_predict(m), scales, weights))
    log = train_for_budget(epoch_batches, step, args.budget, args.warmup_batches, len(train), recipe=recipe)
    model = recipe.final_model()
    predict = make_predict(model)
    test_mae, val_mae = evaluate(test_batches, predict, targets), evaluate(val_batches, predict, targets)
    model.eval()
    inference = measure_inference(test_batches, make_forward(model), len(items["test"]), test_atoms, args.inference_seconds)
    return Outcome(model, recipe, log, test_mae, val_mae, inference, validation_loss(val_batches, predict, scales, weights))


# ----------------------------------------------------------------------------- report


def peak_memory_mib() -> float:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def count_parameters(model: torch.nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def write_report(path: str, report: dict) -> None:
    report.setdefault("host", {
        "python": platform.python_version(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        # a busy machine (other processes on the cores) distorts the timings: see README
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        "loadavg_1min_start_end": [LOAD_AT_START[0], os.getloadavg()[0]],
    })
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def base_report(library: str, version: str, args, targets: list[str], data: dict, stats: TrainStats,
                n_params: int, log: TrainLog, inference: dict, test_mae: dict, val_mae: dict, settings: dict) -> dict:
    """The JSON fields shared by all peers."""
    n_train = len(data["train"])
    return {
        "library": library,
        "version": version,
        "model": args.model,
        "n_params": n_params,
        "targets": targets,
        "train_structures_per_s": (log.timed_structures / log.timed_seconds) if log.timed_seconds > 0 else None,
        "inference": {k: inference[k] for k in ("structures_per_s", "atoms_per_s")},
        "peak_memory_mib": peak_memory_mib(),
        **({"peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20} if args.device.startswith("cuda") else {}),
        "test_mae": test_mae,
        "val_mae": val_mae,
        "epochs": log.structures / n_train,
        "train_seconds": log.train_seconds,
        "steps": log.steps,
        "final_train_loss": log.last_loss,
        "n_structures": {k: len(v) for k, v in data.items()},
        "settings": {
            "budget_s": args.budget, "batch_size": args.batch_size, "cutoff": args.cutoff,
            "features": args.features, "interactions": args.interactions, "lr": args.lr,
            "grad_clip": args.grad_clip, "threads": args.threads, "device": args.device, "seed": args.seed,
            "dtype": "float32", "loss_weights": {t: getattr(args, f"{t}_weight") for t in targets},
            "loss_scales": {t: stats.scales[t] for t in targets},
            "element_energies_eV": {str(z): e for z, e in stats.element_energies.items()},
            "inference_timing": {"batch_size": args.batch_size, "passes": inference["passes"], "seconds": inference["seconds"]},
            **settings,
        },
    }
