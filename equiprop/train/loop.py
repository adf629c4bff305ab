"""The training loop: mini-batches, AdamW, plateau scheduler, EMA, clipping, early stopping.

State needed to resume at the exact step (epoch, batch within the epoch,
optimiser, scheduler, EMA, best validation loss) is saved in ``last.pt``; the
shuffled batch order depends only on (seed, epoch).

Under torchrun every rank takes its share of each global batch (the same
batches as one process would take), the losses are normalised by the global
batch's counts so the averaged gradient equals one process's gradient, and
decisions (stop, time limit, non-finite loss, early stopping) are taken on
values summed over the ranks, so all ranks agree (docs/distributed.md).
In one process on a GPU each step is replayed from a CUDA graph of its padded
batch shape (``cuda_graphs.py``, ``padding.py``; docs/training.md).
"""

import csv
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.models.graphed import GraphedInference
from equiprop.models.allocator import keep_freed_memory
from equiprop.models.checkpoint import save_checkpoint
from equiprop.models.compiled import compiled_outputs
from equiprop.train.config import TrainConfig
from equiprop.train.cuda_graphs import GraphedSteps
from equiprop.train.evaluate import error_sums
from equiprop.train.data import LabelledSet, batch_order
from equiprop.train.distributed import Ranks, all_sum, average_gradients, barrier, shard
from equiprop.train.loader import batch_loader
from equiprop.train.losses import residuals, weighted_loss
from equiprop.train.metrics import ErrorSums, error_rows
from equiprop.train.optim import MovingAverage, adamw, optimizer_state, set_lr_kind
from equiprop.data.padding import PaddedBatch, PaddedShape, pad_batch


class TrainingStopped(Exception):
    """Training ended early (interrupt, non-finite loss); ``code`` is the exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


@dataclass
class Progress:
    epoch: int = 0  # epochs completed
    batch: int = 0  # batches completed in the current epoch
    step: int = 0  # optimiser steps in total
    best_val: float = math.inf
    bad_epochs: int = 0  # epochs since the validation loss last improved
    elapsed: float = 0.0  # seconds of training


class Trainer:
    """Trains ``model`` on ``train``, validates its EMA on ``val``, writes into ``run_dir`` (rank 0 only).

    ``model`` must already be on ``device``; with several ``ranks`` it is wrapped
    in DistributedDataParallel for the training steps.
    """

    def __init__(self, config: TrainConfig, model, train: LabelledSet, val: LabelledSet, scales: dict, run_dir, log=print,
                 ranks: Ranks = Ranks(), device=None):
        ewald = config.electrostatics not in ("none", "auto") and any(a.pbc.any() for a in train.frames)
        graphed = use_cuda_graphs(config, ranks, device if device is not None else next(model.parameters()).device, ewald)
        self.config, self.model, self.train, self.val = config, model, train, val
        self.ranks, self.device = ranks, device if device is not None else next(model.parameters()).device
        # compiled steps bypass DDP's forward (they call the model's outputs): their gradients are averaged by hand
        self.net = DistributedDataParallel(model, broadcast_buffers=False) if ranks.distributed and not config.compile else model
        self.compiled = compiled_outputs(model, Property.FORCES in train.labels) if config.compile else None
        self.targets = list(train.labels)
        self.scales = {p: scales[p.value] for p in self.targets}
        self.weights = {p: config.weight(p) for p in self.targets}
        self.run_dir, self.log = Path(run_dir), log
        self.optimizer = adamw(model, config.lr, config.weight_decay, capturable=graphed)
        self.trained_parameters = list(model.parameters())  # gathered once: clipping does not walk the module tree per step
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=config.lr_factor, patience=config.lr_patience,
                                                                    min_lr=config.min_lr)
        self.moving_average = MovingAverage(model, config.ema_decay)
        self.ema = self.moving_average.average  # validated, saved as best.pt
        self.graphs = GraphedSteps(self._padded_step, len(self.targets), self.device) if graphed else None
        # validation of the moving average replays graphs too (its weights are updated in place)
        self.val_graphs = GraphedInference(self.ema.module, config.batch_size) if graphed else None
        # one process on a GPU: the last step's loss (pinned buffer, copy event), read after the next step is launched
        self._loss_host, self._pending_loss = None, None
        self.progress = Progress()
        self.signal_received = False  # Ctrl-C on this rank
        self.stop_requested = False  # Ctrl-C on any rank (agreed after each step)
        self.on_step = None  # optional callback(trainer) after each step (tests, tools)

    # -- state -------------------------------------------------------------
    def state(self) -> dict:
        return {
            "progress": asdict(self.progress),
            "optimizer": optimizer_state(self.optimizer),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict(),
        }

    def load_state(self, training: dict) -> None:
        self.progress = Progress(**training["progress"])
        self.optimizer.load_state_dict(training["optimizer"])
        set_lr_kind(self.optimizer, capturable=self.graphs is not None)
        self.scheduler.load_state_dict(training["scheduler"])
        self.ema.load_state_dict(training["ema"])

    def save(self, name: str, best: bool = False) -> None:
        if not self.ranks.is_main:
            return
        model = self.ema.module if best else self.model
        save_checkpoint(self.run_dir / name, model, self.config.to_dict(), {p.value: s for p, s in self.scales.items()},
                        None if best else self.state())

    def close(self) -> None:
        """Drop the DistributedDataParallel wrapper before the process group is destroyed.

        Its C++ reducer holds the gloo process group; freed last, from the
        reducer's destructor, the group joins its worker threads while the GIL
        is held, and a worker that needs the GIL to release a finished tensor
        deadlocks the process (seen once in a fresh-clone test run; docs/distributed.md).
        """
        self.net = self.model

    # -- loop --------------------------------------------------------------
    def fit(self) -> Progress:
        """Train until ``epochs``, early stopping or ``max_time``; Ctrl-C stops after the current step.

        A run that has not yet finished an epoch starts one whatever its time
        (it may stop inside it): a run always ends with a validated ``best.pt``.
        """
        previous = signal.signal(signal.SIGINT, self._request_stop) if _main_thread() else None
        torch.set_flush_denormal(True)  # tiny gradients early in training: denormals slow CPUs >10x
        keep_freed_memory()  # no page faults on each step's fresh tensors (allocator.py)
        try:
            while self.progress.epoch < self.config.epochs and (self.progress.epoch == 0 or not self._out_of_time()):
                self._run_epoch()
                if self.progress.bad_epochs >= self.config.early_stopping:
                    self.log(f"early stopping: no validation improvement in {self.config.early_stopping} epochs")
                    break
            if self.graphs is not None:
                self.log(f"CUDA graphs: {self.graphs.n_graphs} recorded (one per padded batch shape), "
                         f"{self.graphs.replays} steps replayed, {self.graphs.eager_steps} eager")
        finally:
            torch.set_flush_denormal(False)
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.progress

    def _run_epoch(self) -> None:
        epoch, config = self.progress.epoch, self.config
        batches = batch_order(len(self.train), config.batch_size, shuffle=True, seed=config.seed, epoch=epoch)[self.progress.batch :]
        mine = [shard(indices, self.ranks) for indices in batches]  # a rank with no share runs one structure at weight 0
        loader = batch_loader(self.train, [m if len(m) else b[:1] for m, b in zip(mine, batches)], self.model_dtype,
                              config.num_workers, pin_memory=self.device.type == "cuda" and self.graphs is None)
        sums, losses = ErrorSums(self.targets), []
        epoch_start_batch = self.progress.batch
        bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False, mininterval=0.5,
                   disable=not self.ranks.is_main)
        start = time.perf_counter()  # steps are timed from the end of the previous one: batch loading counts
        for indices, share, (batch, labels) in zip(batches, mine, loader):
            counts = {p: sum(values[k].numel() for k in indices) for p, values in self.train.labels.items()}  # global batch
            local_loss = self._step(batch, labels, counts, sums if len(share) else None)
            now = time.perf_counter()
            losses += self._agree(local_loss, self.progress.elapsed + now - start)
            start = now
            if self.config.lr_schedule == "budget":
                self._set_lr(budget_lr(self.config, self.progress, len(batches) + epoch_start_batch))
            bar.update()
            if losses:
                bar.set_postfix(loss=f"{sum(losses) / len(losses):.4g}", refresh=False)  # redrawn at most every 0.5 s
            if self.on_step is not None:
                self.on_step(self)
            # one process stops at once; several wait for the agreement after the next step
            if self.stop_requested or (self.signal_received and not self.ranks.distributed):
                self.save("last.pt")
                barrier(self.ranks)  # torchrun stops every rank once one exits non-zero: save first
                raise TrainingStopped(
                    f"interrupted at epoch {epoch + 1}, step {self.progress.step}; saved {self.run_dir / 'last.pt'}; "
                    f"continue with --resume {self.run_dir}", code=130)
            if self._out_of_time():
                break
        if not self.ranks.distributed:  # (ranks keep the agreed time: their decisions must not differ)
            losses += self._read_pending_loss()  # on a GPU: wait for the last step, and count the wait as training time
            self.progress.elapsed += time.perf_counter() - start
        bar.close()
        self._end_epoch(sums, losses)

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)  # CUDA graphs read the tensor in place
            else:
                group["lr"] = lr

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])  # a tensor with CUDA graphs

    @property
    def model_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _step(self, batch, labels, counts, sums: ErrorSums | None) -> torch.Tensor:
        """One optimiser step on this rank's share; ``sums`` is None for a placeholder share (weight 0)."""
        if not self.model.training:  # train() walks every module (0.5 ms a step on the CPU)
            self.model.train()
        if self.graphs is not None:
            return self._graphed_step(batch, labels, sums)
        batch = batch.to(self.device, non_blocking=True)
        labels = {p: v.to(self.device, non_blocking=True) for p, v in labels.items()}
        if self.compiled is not None:
            pred = self.compiled(batch)
        else:
            pred = self.net(batch, compute_forces=Property.FORCES in self.targets,
                            compute_stress=Property.STRESS in self.targets)
        errors = residuals(pred, labels, batch)
        loss = weighted_loss(errors, self.scales, self.weights, counts) * (1.0 if sums is not None else 0.0)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * self.ranks.world_size).backward()  # DDP averages the ranks' gradients; their losses add up
        if self.compiled is not None:
            average_gradients(self.trained_parameters, self.ranks)
        self._clip_and_step()
        self._after_update()
        if sums is not None:
            sums.add(errors)
        return loss.detach()

    def _graphed_step(self, batch, labels, sums: ErrorSums) -> torch.Tensor:
        """The step replayed from the CUDA graph of the batch's padded shape (one process: ``counts`` are the batch's)."""
        shape = PaddedShape.of(batch, self.config.batch_size)
        loss, step_sums = self.graphs(pad_batch(batch, labels, shape, self.model.cutoff), shape)
        sums.sums = sums.sums.to(self.device) + step_sums
        self._after_update()
        return loss

    def _padded_step(self, padded: PaddedBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """What a CUDA graph records: loss, backward and optimiser step on a padded batch; loss and error sums."""
        self.optimizer.zero_grad(set_to_none=False)  # in place: the gradients keep their addresses
        pred = self.model(padded.batch, compute_forces=Property.FORCES in self.targets,
                          compute_stress=Property.STRESS in self.targets)
        errors = padded.masked(residuals(pred, padded.labels, padded.batch))
        loss = weighted_loss(errors, self.scales, self.weights, dict(zip(padded.labels, padded.counts)))
        loss.backward()
        self._clip_and_step()
        return loss.detach(), error_rows(errors, self.targets, padded.counts)

    def _clip_and_step(self) -> None:
        torch.nn.utils.clip_grad_norm_(self.trained_parameters, self.config.grad_clip)
        self.optimizer.step()

    def _after_update(self) -> None:
        self.moving_average.update()
        self.progress.step += 1
        self.progress.batch += 1

    def _agree(self, local_loss: torch.Tensor, elapsed: float) -> list[float]:
        """Sum the step's loss, stop requests and times over the ranks; every rank takes the same decisions.

        Returns the losses now known: this step's, or, for one process on a GPU,
        the previous step's (none after the first), so the host does not wait for
        the step it has just launched and prepares the next batch meanwhile.
        """
        if not self.ranks.distributed and self.device.type == "cuda":
            self.progress.elapsed = elapsed
            known = self._read_pending_loss()  # waits for the previous copy: the buffer is free again
            if self._loss_host is None:
                self._loss_host = torch.empty((), dtype=torch.float64, pin_memory=True)
            self._loss_host.copy_(local_loss, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self._pending_loss = (done, self.progress.step)
            return known
        shared = torch.stack([local_loss.double(), local_loss.new_tensor(float(self.signal_received), dtype=torch.float64),
                              local_loss.new_tensor(elapsed, dtype=torch.float64)])
        loss, signals, elapsed_sum = all_sum(shared, self.ranks).tolist()
        self._check_finite(loss, self.progress.step)
        self.stop_requested = signals > 0
        self.progress.elapsed = elapsed_sum / self.ranks.world_size
        return [loss]

    def _read_pending_loss(self) -> list[float]:
        if self._pending_loss is None:
            return []
        done, step = self._pending_loss
        self._pending_loss = None
        done.synchronize()
        loss = float(self._loss_host)
        self._check_finite(loss, step)
        return [loss]

    def _check_finite(self, loss: float, step: int, what: str = "loss") -> None:
        if not math.isfinite(loss):
            raise TrainingStopped(
                f"non-finite {what} at epoch {self.progress.epoch + 1}, step {step}; "
                f"the last good checkpoint is {self.run_dir / 'last.pt'} (end of epoch {self.progress.epoch})", code=1)

    def _end_epoch(self, sums: ErrorSums, losses: list[float]) -> None:
        sums.sums = all_sum(sums.sums.to(self.device), self.ranks)
        val_sums = self.validate()
        val_loss = sum(self.weights[p] * mse / self.scales[p] ** 2 for p, mse in val_sums.mse().items())
        self._check_finite(val_loss, self.progress.step, "validation loss")  # before last.pt is replaced
        if self.config.lr_schedule == "plateau":
            self.scheduler.step(val_loss)
        improved = val_loss < self.progress.best_val
        self.progress.best_val = min(self.progress.best_val, val_loss)
        self.progress.bad_epochs = 0 if improved else self.progress.bad_epochs + 1
        self.progress.epoch += 1
        self.progress.batch = 0
        train_loss = sum(losses) / len(losses) if losses else math.nan
        self._write_row(train_loss, val_loss, sums.result(), val_sums.result())
        self.save("last.pt")
        if improved:
            self.save("best.pt", best=True)
        self.log(f"epoch {self.progress.epoch}: train loss {train_loss:.4g}, val loss {val_loss:.4g}"
                 f"{' (best)' if improved else ''}, lr {self.lr:.3g}")

    def validate(self) -> ErrorSums:
        """Errors of the EMA model on the validation set (each rank takes every world_size-th structure)."""
        mine = self.val.subset(range(self.ranks.rank, len(self.val), self.ranks.world_size))
        sums = error_sums(self.ema.module, mine, self.config.batch_size, self.val_graphs)
        sums.sums = all_sum(sums.sums.to(self.device), self.ranks)
        return sums

    def _write_row(self, train_loss, val_loss, train_metrics, val_metrics) -> None:
        if not self.ranks.is_main:
            return
        row = {"epoch": self.progress.epoch, "step": self.progress.step, "lr": self.lr,
               "seconds": round(self.progress.elapsed, 3), "train_loss": train_loss, "val_loss": val_loss}
        for split, metrics in (("train", train_metrics), ("val", val_metrics)):
            for target, m in metrics.items():
                row[f"{split}_{target}_mae"], row[f"{split}_{target}_rmse"] = m["mae"], m["rmse"]
        append_metrics_row(self.run_dir / "metrics.csv", row)

    def _out_of_time(self) -> bool:
        return self.config.max_time is not None and self.progress.elapsed >= self.config.max_time

    def _request_stop(self, signum, frame) -> None:
        if self.signal_received:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signal_received = True
        self.log("stopping after this step (Ctrl-C again to abort at once)")


def use_cuda_graphs(config: TrainConfig, ranks: Ranks, device: torch.device, ewald: bool = False) -> bool:
    """Whether training steps are replayed from CUDA graphs: where asked, or by default (``None``) where they can be.

    They can for one process on a CUDA device without ``--compile``, unless ``ewald`` (periodic cells under
    an electrostatic term: torch-pme's Ewald sum runs eagerly); asked for elsewhere, InputError. The
    command line calls this before it touches the run directory.
    """
    if config.cuda_graphs is None:
        return device.type == "cuda" and not ranks.distributed and not config.compile and not ewald
    if config.cuda_graphs and ewald:
        raise InputError("--cuda-graphs cannot record the Ewald sum of periodic cells (--electrostatics "
                         f"{config.electrostatics}): train without it")
    if not config.cuda_graphs:
        return False
    if device.type != "cuda":
        raise InputError(f"--cuda-graphs needs a CUDA device; got --device {config.device}")
    if ranks.distributed:
        raise InputError("--cuda-graphs runs in one process only; train without it under torchrun")
    if config.compile:
        raise InputError("--cuda-graphs and --compile exclude each other; choose one")
    return True


def append_metrics_row(path: Path, row: dict) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def drop_rows_after(path: Path, epoch: int) -> None:
    """Keep only metrics rows of completed epochs (<= ``epoch``) when resuming."""
    if not path.exists():
        return
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    kept = [r for r in rows if int(r["epoch"]) <= epoch]
    if len(kept) != len(rows):
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(kept)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def budget_lr(config: TrainConfig, progress: Progress, steps_per_epoch: int) -> float:
    """``--lr-schedule budget``: ``lr`` falling linearly to ``min_lr`` as the run spends its budget.

    The budget's used fraction is the larger of ``elapsed / max_time`` and
    ``steps / (epochs * steps_per_epoch)``: a time-bounded run ends annealed
    whenever it stops (budgeted training: Li, Yumer, Ramanan, ICLR 2020).
    """
    used = progress.step / (config.epochs * steps_per_epoch)
    if config.max_time:
        used = max(used, progress.elapsed / config.max_time)
    return config.min_lr + (config.lr - config.min_lr) * max(0.0, 1.0 - used)
