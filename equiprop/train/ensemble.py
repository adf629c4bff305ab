"""``equiprop train --ensemble N``: a committee of N members in one run directory.

Layout: ``RUN/member-K/`` is an ordinary run (config, metrics, ``last.pt``,
``best.pt``, its own test metrics) of member K, trained with seed ``seed + K``
(initial weights and batch order) on the split of ``split_seed`` (default:
``seed``), so every member sees the same train/val/test structures. Members
train one after another; ``max_time`` bounds all of them together: each takes
``max_time / N``, whatever the others used, so a resumed or overrunning member
never starves the next (and every member finishes at least one epoch, see
:meth:`equiprop.train.loop.Trainer.fit`). ``RUN/best.pt`` is the committee
(:func:`equiprop.models.checkpoint.save_committee`), evaluated on the test split
like a single model, plus the calibration of its spread.
``--resume RUN`` continues the unfinished members and skips finished ones.
"""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.models.committee import Committee
from equiprop.models.checkpoint import load_checkpoint, load_model, save_committee
from equiprop.train.config import TrainConfig, save_yaml
from equiprop.train.prepare import split_seed
from equiprop.train.rundir import prepare_run_dir

#: Written into a member's directory once its test evaluation is done; a resumed ensemble skips such members.
MEMBER_DONE = "test_metrics.json"


def member_config(config: TrainConfig, k: int, run_dir: Path, budget: float | None) -> TrainConfig:
    """Member ``k``'s config: its own seed and directory, the ensemble's split, ``budget`` seconds."""
    return replace(config, ensemble=1, seed=config.seed + k, split_seed=split_seed(config),
                   out=str(run_dir / f"member-{k}"), max_time=budget)


def train_ensemble(config: TrainConfig, train_one, resume: bool = False, overwrite: bool = False, log=print) -> dict:
    """Train the members with ``train_one(config, resume, overwrite, log)``, save and evaluate the committee."""
    run_dir = Path(config.out)
    if resume:
        if not (run_dir / "config.yaml").is_file():
            raise InputError(f"{run_dir}: nothing to resume (no config.yaml)")
    else:
        run_dir = prepare_run_dir(run_dir, False, overwrite, log)
        save_yaml(config, run_dir / "config.yaml")
    n = config.ensemble
    budget = None if config.max_time is None else config.max_time / n
    for k in range(n):
        member = member_config(config, k, run_dir, budget)
        member_dir = Path(member.out)
        if (member_dir / MEMBER_DONE).is_file():
            log(f"member {k + 1}/{n}: finished before, kept")
            continue
        again = (member_dir / "last.pt").is_file()
        log(f"member {k + 1}/{n}: seed {member.seed}" + (f", {budget:.0f} s" if budget is not None else "")
            + (" (resumed)" if again else ""))
        train_one(member, resume=again, overwrite=False, log=log)
    committee = Committee([load_model(run_dir / f"member-{k}" / "best.pt") for k in range(n)])
    normalization = load_checkpoint(run_dir / "member-0" / "best.pt")["normalization"]
    save_committee(run_dir / "best.pt", committee, config.to_dict(), normalization)
    log(f"committee of {n}: {run_dir / 'best.pt'}")
    return committee


def calibration(committee: Committee, frames, keys_forces: str, batch_size: int = 32) -> dict[str, float]:
    """How well the spread ranks structures by their error, on labelled ``frames``.

    Per structure: the mean over atoms of ``forces_std`` against the RMS force
    error of the committee mean (eV/Angstrom). Returns their Spearman rank
    correlation and the two means.
    """
    out = committee.predict(frames, batch_size=batch_size)
    spread = np.array([s.mean() for s in out["forces_std"]])
    error = np.array([np.sqrt(((f - a.arrays[keys_forces]) ** 2).mean()) for f, a in zip(out["forces"], frames)])
    varied = len(frames) > 2 and np.ptp(spread) > 0 and np.ptp(error) > 0
    rho = float(spearmanr(spread, error).statistic) if varied else float("nan")
    return {"spearman_forces": rho, "mean_forces_std": float(spread.mean()), "mean_forces_rmse": float(error.mean()),
            "n_structures": len(frames)}


def write_calibration(committee: Committee, config: TrainConfig, test, run_dir: Path, log) -> dict | None:
    """``RUN/calibration.json`` on the ``test`` split (energy models only)."""
    if Property.ENERGY not in committee.targets or Property.FORCES.value not in config.targets:
        return None
    result = calibration(committee, test.frames, config.forces_key, config.batch_size)
    (run_dir / "calibration.json").write_text(json.dumps(result, indent=2))
    log(f"committee spread vs force error on the test split: Spearman {result['spearman_forces']:.2f} "
        f"(mean forces_std {1000 * result['mean_forces_std']:.1f} meV/A, mean RMSE {1000 * result['mean_forces_rmse']:.1f} meV/A)")
    return result
