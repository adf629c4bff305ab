"""The training loop: mini-batches, AdamW, plateau scheduler, EMA, clipping, early stopping.

State needed to resume at the exact step (epoch, batch within the epoch,
optimiser, scheduler, EMA, best validation loss) is saved in ``last.pt``; the
shuffled batch order depends only on (seed, epoch).

Under torchrun every rank takes its share of each global batch (the same
batches as one process would take), the losses are normalised by the global
batch's counts so the averaged gradient equals one process's gradient, and
decisions (stop, time limit, non-finite loss, early stopping) are taken on
values summed over the ranks, so all ranks agree (docs/distributed.md).
"""

import csv
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.train.allocator import keep_freed_memory
from equiprop.train.compiled import compiled_outputs
from equiprop.train.checkpoint import save_checkpoint
from equiprop.train.config import TrainConfig
from equiprop.train.evaluate import error_sums
from equiprop.train.data import LabelledSet, batch_order
from equiprop.train.distributed import Ranks, all_sum, barrier, shard
from equiprop.train.loader import batch_loader
from equiprop.train.losses import residuals, weighted_loss
from equiprop.train.metrics import ErrorSums


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
        if config.compile and ranks.distributed:
            raise InputError("--compile runs in one process only; train without it under torchrun")
        self.config, self.model, self.train, self.val = config, model, train, val
        self.ranks, self.device = ranks, device if device is not None else next(model.parameters()).device
        self.net = DistributedDataParallel(model, broadcast_buffers=False) if ranks.distributed else model
        self.compiled = compiled_outputs(model, Property.FORCES in train.labels) if config.compile else None
        self.targets = list(train.labels)
        self.scales = {p: scales[p.value] for p in self.targets}
        self.weights = {p: config.weight(p) for p in self.targets}
        self.run_dir, self.log = Path(run_dir), log
        self.optimizer = adamw(model, config.lr, config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=config.lr_factor, patience=config.lr_patience)
        self.ema = AveragedModel(model, multi_avg_fn=ema_update(config.ema_decay), use_buffers=True)
        self.progress = Progress()
        self.signal_received = False  # Ctrl-C on this rank
        self.stop_requested = False  # Ctrl-C on any rank (agreed after each step)
        self.on_step = None  # optional callback(trainer) after each step (tests, tools)

    # -- state -------------------------------------------------------------
    def state(self) -> dict:
        return {
            "progress": asdict(self.progress),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict(),
        }

    def load_state(self, training: dict) -> None:
        self.progress = Progress(**training["progress"])
        self.optimizer.load_state_dict(training["optimizer"])
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
        """Train until ``epochs``, early stopping or ``max_time``; Ctrl-C stops after the current step."""
        previous = signal.signal(signal.SIGINT, self._request_stop) if _main_thread() else None
        torch.set_flush_denormal(True)  # tiny gradients early in training: denormals slow CPUs >10x
        keep_freed_memory()  # no page faults on each step's fresh tensors (allocator.py)
        try:
            while self.progress.epoch < self.config.epochs and not self._out_of_time():
                self._run_epoch()
                if self.progress.bad_epochs >= self.config.early_stopping:
                    self.log(f"early stopping: no validation improvement in {self.config.early_stopping} epochs")
                    break
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
                              config.num_workers, pin_memory=self.device.type == "cuda")
        sums, losses = ErrorSums(self.targets), []
        bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False, mininterval=0.5,
                   disable=not self.ranks.is_main)
        start = time.perf_counter()  # steps are timed from the end of the previous one: batch loading counts
        for indices, share, (batch, labels) in zip(batches, mine, loader):
            counts = {p: sum(values[k].numel() for k in indices) for p, values in self.train.labels.items()}  # global batch
            local_loss = self._step(batch, labels, counts, sums if len(share) else None)
            now = time.perf_counter()
            losses.append(self._agree(local_loss, self.progress.elapsed + now - start))
            start = now
            bar.update()
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
        bar.close()
        self._end_epoch(sums, losses)

    @property
    def model_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def _step(self, batch, labels, counts, sums: ErrorSums | None) -> torch.Tensor:
        """One optimiser step on this rank's share; ``sums`` is None for a placeholder share (weight 0)."""
        batch = batch.to(self.device, non_blocking=True)
        labels = {p: v.to(self.device, non_blocking=True) for p, v in labels.items()}
        self.model.train()
        if self.compiled is not None:
            pred = self.compiled(batch)
        else:
            pred = self.net(batch, compute_forces=Property.FORCES in self.targets)
        errors = residuals(pred, labels, batch)
        loss = weighted_loss(errors, self.scales, self.weights, counts) * (1.0 if sums is not None else 0.0)
        self.optimizer.zero_grad(set_to_none=True)
        (loss * self.ranks.world_size).backward()  # DDP averages the ranks' gradients; their losses add up
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.ema.update_parameters(self.model)
        if sums is not None:
            sums.add(errors)
        self.progress.step += 1
        self.progress.batch += 1
        return loss.detach()

    def _agree(self, local_loss: torch.Tensor, elapsed: float) -> float:
        """Sum the step's loss, stop requests and times over the ranks; every rank takes the same decisions."""
        shared = torch.stack([local_loss.double(), local_loss.new_tensor(float(self.signal_received), dtype=torch.float64),
                              local_loss.new_tensor(elapsed, dtype=torch.float64)])
        loss, signals, elapsed_sum = all_sum(shared, self.ranks).tolist()
        if not math.isfinite(loss):
            raise TrainingStopped(
                f"non-finite loss at epoch {self.progress.epoch + 1}, step {self.progress.step}; "
                f"the last good checkpoint is {self.run_dir / 'last.pt'} (end of epoch {self.progress.epoch})", code=1)
        self.stop_requested = signals > 0
        self.progress.elapsed = elapsed_sum / self.ranks.world_size
        return loss

    def _end_epoch(self, sums: ErrorSums, losses: list[float]) -> None:
        sums.sums = all_sum(sums.sums.to(self.device), self.ranks)
        val_sums = self.validate()
        val_loss = sum(self.weights[p] * mse / self.scales[p] ** 2 for p, mse in val_sums.mse().items())
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
                 f"{' (best)' if improved else ''}, lr {self.optimizer.param_groups[0]['lr']:.3g}")

    def validate(self) -> ErrorSums:
        """Errors of the EMA model on the validation set (each rank takes every world_size-th structure)."""
        mine = self.val.subset(range(self.ranks.rank, len(self.val), self.ranks.world_size))
        sums = error_sums(self.ema.module, mine, self.config.batch_size)
        sums.sums = all_sum(sums.sums.to(self.device), self.ranks)
        return sums

    def _write_row(self, train_loss, val_loss, train_metrics, val_metrics) -> None:
        if not self.ranks.is_main:
            return
        row = {"epoch": self.progress.epoch, "step": self.progress.step, "lr": self.optimizer.param_groups[0]["lr"],
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


def adamw(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW as one fused kernel per step where the device has it (CPU and CUDA do), else multi-tensor.

    PyTorch's CPU default is a Python loop over the parameter tensors with
    several small copies each; for SO3Net the multi-tensor version took 0.79 ms
    per step and the fused one 0.26 ms (docs/performance.md, step 13).
    """
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)


def ema_update(decay: float):
    """EMA with warm-up: the decay is ``min(decay, (1 + n) / (10 + n))`` after n updates.

    Early averages are not dominated by the random initial weights (as in
    TensorFlow's ExponentialMovingAverage with ``num_updates``).
    """

    def update(averaged: list, current: list, num_averaged) -> None:
        n = float(num_averaged)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        for a, c in zip(averaged, current):
            if a.is_floating_point():
                a.lerp_(c, weight)
            else:  # index tables
                a.copy_(c)

    return update


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
