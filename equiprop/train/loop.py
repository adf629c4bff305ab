"""The training loop: mini-batches, AdamW, plateau scheduler, EMA, clipping, early stopping.

State needed to resume at the exact step (epoch, batch within the epoch,
optimiser, scheduler, EMA, best validation loss) is saved in ``last.pt``; the
shuffled batch order depends only on (seed, epoch).
"""

import csv
import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from equiprop.keys import Property
from equiprop.train.checkpoint import save_checkpoint
from equiprop.train.config import TrainConfig
from equiprop.train.evaluate import error_sums
from equiprop.train.data import LabelledSet, batch_order, make_batch
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
    """Trains ``model`` on ``train``, validates its EMA on ``val``, writes into ``run_dir``."""

    def __init__(self, config: TrainConfig, model, train: LabelledSet, val: LabelledSet, scales: dict, run_dir, log=print):
        self.config, self.model, self.train, self.val = config, model, train, val
        self.targets = list(train.labels)
        self.scales = {p: scales[p.value] for p in self.targets}
        self.weights = {p: config.weight(p) for p in self.targets}
        self.run_dir, self.log = Path(run_dir), log
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=config.lr_factor, patience=config.lr_patience)
        self.ema = AveragedModel(model, multi_avg_fn=ema_update(config.ema_decay), use_buffers=True)
        self.progress = Progress()
        self.stop_requested = False
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
        model = self.ema.module if best else self.model
        save_checkpoint(self.run_dir / name, model, self.config.to_dict(), {p.value: s for p, s in self.scales.items()},
                        None if best else self.state())

    # -- loop --------------------------------------------------------------
    def fit(self) -> Progress:
        """Train until ``epochs``, early stopping or ``max_time``; Ctrl-C stops after the current step."""
        previous = signal.signal(signal.SIGINT, self._request_stop) if _main_thread() else None
        torch.set_flush_denormal(True)  # tiny gradients early in training: denormals slow CPUs >10x
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
        batches = batch_order(len(self.train), config.batch_size, shuffle=True, seed=config.seed, epoch=epoch)
        sums, losses = ErrorSums(self.targets), []
        bar = tqdm(batches[self.progress.batch :], desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   mininterval=0.5)
        for indices in bar:
            start = time.perf_counter()
            loss = self._step(indices, sums)
            losses.append(loss)
            self.progress.elapsed += time.perf_counter() - start
            bar.set_postfix(loss=f"{sum(losses) / len(losses):.4g}")
            if self.on_step is not None:
                self.on_step(self)
            if self.stop_requested:
                self.save("last.pt")
                raise TrainingStopped(
                    f"interrupted at epoch {epoch + 1}, step {self.progress.step}; saved {self.run_dir / 'last.pt'}; "
                    f"continue with --resume {self.run_dir}", code=130)
            if self._out_of_time():
                break
        bar.close()
        self._end_epoch(sums, losses)

    def _step(self, indices, sums: ErrorSums) -> float:
        reference = next(self.model.parameters())
        batch, labels = make_batch(self.train, indices, reference.device, reference.dtype)
        self.model.train()
        pred = self.model(batch, compute_forces=Property.FORCES in self.targets)
        errors = residuals(pred, labels, batch)
        loss = weighted_loss(errors, self.scales, self.weights)
        if not torch.isfinite(loss):
            raise TrainingStopped(
                f"non-finite loss at epoch {self.progress.epoch + 1}, step {self.progress.step + 1}; "
                f"the last good checkpoint is {self.run_dir / 'last.pt'} (end of epoch {self.progress.epoch})", code=1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.ema.update_parameters(self.model)
        sums.add(errors)
        self.progress.step += 1
        self.progress.batch += 1
        return float(loss.detach())

    def _end_epoch(self, sums: ErrorSums, losses: list[float]) -> None:
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
        """Errors of the EMA model on the validation set."""
        return error_sums(self.ema.module, self.val, self.config.batch_size)

    def _write_row(self, train_loss, val_loss, train_metrics, val_metrics) -> None:
        row = {"epoch": self.progress.epoch, "step": self.progress.step, "lr": self.optimizer.param_groups[0]["lr"],
               "seconds": round(self.progress.elapsed, 3), "train_loss": train_loss, "val_loss": val_loss}
        for split, metrics in (("train", train_metrics), ("val", val_metrics)):
            for target, m in metrics.items():
                row[f"{split}_{target}_mae"], row[f"{split}_{target}_rmse"] = m["mae"], m["rmse"]
        append_metrics_row(self.run_dir / "metrics.csv", row)

    def _out_of_time(self) -> bool:
        return self.config.max_time is not None and self.progress.elapsed >= self.config.max_time

    def _request_stop(self, signum, frame) -> None:
        if self.stop_requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.stop_requested = True
        self.log("stopping after this step (Ctrl-C again to abort at once)")


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
