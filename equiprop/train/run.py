"""A whole training run: run directory, data, model, loop, final test evaluation."""

import json

import torch
from dataclasses import replace
from pathlib import Path

from equiprop.errors import InputError
from equiprop.train import distributed
from equiprop.models.checkpoint import load_checkpoint, load_model, model_from_checkpoint
from equiprop.train.config import TrainConfig, save_yaml
from equiprop.train.ensemble import train_ensemble, write_calibration
from equiprop.train.evaluate import evaluate
from equiprop.train.loop import Trainer, drop_rows_after, use_cuda_graphs
from equiprop.train.plots import parity_plots
from equiprop.train.prepare import (Splits, build_model, fit_normalization, mean_neighbors, prepare_data,
                                    resolved)
from equiprop.train.rundir import prepare_run_dir
from equiprop.data.split import structure_kind
from equiprop.data.typemap import TypeMap

#: Fields that may change when a run is resumed; all others must match the saved config.
RESUMABLE_CHANGES = ("epochs", "max_time", "early_stopping", "device", "num_workers", "compile", "cuda_graphs")


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, log=print, on_step=None) -> dict:
    """Train as ``config`` says; returns the test metrics. See :class:`equiprop.train.loop.Trainer`.

    Under torchrun, every rank trains its share and rank 0 alone writes the run
    directory and evaluates the test set (other ranks return ``{}``).
    With ``config.ensemble > 1`` a committee is trained (:mod:`equiprop.train.ensemble`).
    """
    if config.ensemble > 1:
        return _train_committee(config, resume, overwrite, log, on_step)
    ranks, device, joined = distributed.start(config.device)
    trainer = None
    try:
        use_cuda_graphs(config, ranks, device)  # a flag that cannot apply fails before the run directory is touched
        log = log if ranks.is_main else _quiet
        run_dir = distributed.on_main(lambda: prepare_run_dir(config.out, resume, overwrite, log), ranks)
        trainer, splits = (_resumed_trainer if resume else _new_trainer)(config, run_dir, log, ranks, device)
        trainer.on_step = on_step
        trainer.fit()
        distributed.barrier(ranks)
        return finish(trainer.config, run_dir, splits.test, log, device) if ranks.is_main else {}
    finally:
        if trainer is not None:
            trainer.close()  # the DDP reducer must not outlive the process group (Trainer.close)
        if joined:
            distributed.stop()


def _train_committee(config: TrainConfig, resume: bool, overwrite: bool, log, on_step) -> dict:
    if distributed.ranks_from_env().distributed:
        raise InputError("--ensemble under torchrun is not supported: train the committee in one process")

    def train_one(member, resume, overwrite, log):
        return train(member, resume=resume, overwrite=overwrite, log=log, on_step=on_step)

    train_ensemble(config, train_one, resume, overwrite, log)
    run_dir, test = Path(config.out), prepare_data(config).test
    metrics = finish(config, run_dir, test, log, distributed.resolve_device(config.device, distributed.Ranks()))
    write_calibration(load_model(run_dir / "best.pt"), config, test, run_dir, log)
    return metrics


def _quiet(message: str) -> None:
    """Log of ranks other than 0."""


def _new_trainer(config: TrainConfig, run_dir: Path, log, ranks, device) -> tuple[Trainer, Splits]:
    splits = prepare_data(config)
    chosen = resolved(config, splits)
    for name in ("electrostatics", "charge_spread"):
        if getattr(config, name) == "auto":
            log(f"{name.replace('_', ' ')}: {getattr(chosen, name)} (auto)")
    config = chosen
    torch.manual_seed(config.seed)  # reproducible initial weights, the same on every rank
    model = build_model(config, splits.type_map, mean_neighbors(splits.train)).to(device)
    scales = fit_normalization(model, splits.train)
    if ranks.is_main:
        save_yaml(config, run_dir / "config.yaml")
    log(f"data: {len(splits.train)} train, {len(splits.val)} validation, {len(splits.test)} test structures; "
        f"{sum(p.numel() for p in model.parameters())} parameters"
        + (f"; {ranks.world_size} processes on {device.type}" if ranks.distributed else ""))
    return Trainer(config, model, splits.train, splits.val, scales, run_dir, log, ranks, device), splits


def _resumed_trainer(requested: TrainConfig, run_dir: Path, log, ranks, device) -> tuple[Trainer, Splits]:
    payload = load_checkpoint(run_dir / "last.pt")
    if "converted_from" in payload:
        raise InputError(f"{run_dir / 'last.pt'}: written by an older equiprop ({payload['converted_from']}); its weights "
                         f"load for evaluate, predict and check, but resuming needs a run of this version: start a new one")
    saved = TrainConfig(**payload["config"])
    changed = [k for k, v in requested.to_dict().items() if k not in RESUMABLE_CHANGES + ("out",) and v != getattr(saved, k)
               and not (k in ("electrostatics", "charge_spread") and v == "auto")]  # the saved run holds what auto decided
    if changed:
        raise InputError(f"{run_dir}: cannot change {', '.join(changed)} when resuming (only {', '.join(RESUMABLE_CHANGES)})")
    config = replace(saved, **{k: getattr(requested, k) for k in RESUMABLE_CHANGES}, out=str(run_dir))
    splits = prepare_data(config, TypeMap(tuple(payload["hparams"]["elements"])))
    model = model_from_checkpoint(payload, str(run_dir / "last.pt"), device)
    trainer = Trainer(config, model, splits.train, splits.val, payload["normalization"], run_dir, log, ranks, device)
    trainer.load_state(payload["training"])
    if ranks.is_main:
        drop_rows_after(run_dir / "metrics.csv", trainer.progress.epoch)
    log(f"resuming {run_dir} at epoch {trainer.progress.epoch + 1}, step {trainer.progress.step}")
    return trainer, splits


def finish(config: TrainConfig, run_dir: Path, test, log, device=None) -> dict:
    """Evaluate ``best.pt`` on the test set: test_metrics.json, parity plots, summary.md."""
    model = load_model(run_dir / "best.pt", device if device is not None else config.device)
    result = evaluate(model, test, config.batch_size)
    by_kind = errors_by_kind(model, test, config.batch_size)
    metrics = {**result.metrics, **({"by_kind": by_kind} if by_kind else {})}
    (run_dir / "test_metrics.json").write_text(json.dumps(metrics, indent=2))
    parity_plots(result.parity, result.metrics, run_dir)
    table = summary_table(result.metrics, len(test))
    for kind, values in by_kind.items():
        table += "\n\n" + summary_table(values, values["n_structures"]).replace("held-out test set", f"held-out {kind} structures")
    (run_dir / "summary.md").write_text(table + "\n")
    log(table)
    return metrics


def errors_by_kind(model, test, batch_size: int) -> dict:
    """Test metrics of each structure kind (``info["sample"]``) when the test set holds more than one."""
    kinds = [structure_kind(a) for a in test.frames]
    if len(set(kinds)) < 2:
        return {}
    out = {}
    for kind in sorted(set(kinds)):
        part = test.subset([k for k, name in enumerate(kinds) if name == kind])
        out[kind] = {**evaluate(model, part, batch_size).metrics, "n_structures": len(part)}
    return out


def summary_table(metrics: dict, n_structures: int) -> str:
    lines = [f"held-out test set, {n_structures} structures", "", "| target | MAE | RMSE | unit |", "|---|---|---|---|"]
    for target, m in metrics.items():
        if not isinstance(m, dict) or "mae" not in m:
            continue
        lines.append(f"| {target} | {m['mae']:.4g} | {m['rmse']:.4g} | {m['unit']} |")
        if "mae_debye" in m:
            lines.append(f"| {target} | {m['mae_debye']:.4g} | {m['rmse_debye']:.4g} | D |")
    return "\n".join(lines)
