"""``equiprop learn``: train a committee -> explore -> select -> label with DFT -> retrain, resumable.

Layout of ``OUT`` (``learn.yaml`` holds the :class:`LearnConfig`):

- ``round-K/committee/``: the round's committee (``equiprop train --ensemble``), trained
  on the base data plus every frame labelled in rounds before K
- ``round-K/candidates.csv``: every explored frame with its score (largest per-atom force spread)
- ``round-K/minima.xyz``: the minima the round's relaxations found (later rounds start MD from them
  for sizes whose own relaxation failed)
- ``round-K/selected.xyz``: the frames chosen for DFT, with the committee's predictions
  (``pred_*``, ``pred_*_std``) made *before* it saw their labels
- ``round-K/labelled.xyz``: the DFT labels of ``selected.xyz`` (grows frame by frame; resumable)
- ``round-K/round.json``: thresholds, counts, timings and, once labelled, the honest
  scores: the committee's errors on these new frames
- ``learning_curve.png`` and ``learning_curve.csv``: scores by round

Each stage is skipped when its output exists, so an interrupted run resumes
where it stopped: ``equiprop learn --resume OUT``; the exploration resumes after its
last finished stage (relaxations, each temperature's MD), kept in ``round-K/explore/``.
The committee, ``train.xyz`` and ``explore/`` are scratch that a resumed round rebuilds
if needed; ``candidates.xyz`` (every
explored frame, ~0.4 MB a round) is kept as the pool for a random-selection baseline.
"""

import json
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import yaml
from ase import Atoms

from equiprop.data.io import read_structures, write_structures
from equiprop.errors import InputError
from equiprop.keys import is_per_atom
from equiprop.labelling.clusters import IONS
from equiprop.learn.explore import ExploreSettings, explore, score
from equiprop.learn.select import Selection, select
from equiprop.sampling.guard import Guard, min_heavy_distance
from equiprop.sampling.md import MDSettings
from equiprop.sampling.minima import RelaxSettings

PREDICTION_PREFIX = "pred_"


@dataclass
class LearnConfig:
    """An active-learning run (times in s, thresholds in eV/Angstrom)."""

    out: str = "learn"
    rounds: int = 4
    base_data: str | None = None  # extxyz with DFT labels, or "water+ions"; None: the shipped PBE0 water clusters
    ensemble: int = 3
    train_time: float = 240.0  # seconds of training for the whole committee, per round
    train: dict = field(default_factory=dict)  # further TrainConfig fields (model size, targets, ...)
    select: int = 40  # frames labelled per round
    low: float | None = None  # None: the 90th percentile of the committee's score on its own test split (in_domain_score)
    high: float = 1.5
    per_trajectory: int = 3
    per_size: int | None = None  # at most this many selected frames of one size per round (None: no cap)
    minima: int = 4  # places per round for the explored minima, whatever their score (learn/select.py)
    explore: dict = field(default_factory=dict)  # ExploreSettings fields; md/relax/guard as nested mappings
    seed: int = 0
    dft: dict = field(default_factory=dict)  # DFTSettings fields (default: the shipped data's PBE0/def2-SVP)
    schedule: dict = field(default_factory=dict)  # {K: {field: value}}: from round K on (explore merged), see for_round

    def for_round(self, k: int) -> "LearnConfig":
        """The settings round ``k`` runs with: every ``schedule`` entry with key <= k applied in key order.

        A recipe that changed between rounds stays one file that reproduces every round.
        """
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for start in sorted(self.schedule, key=int):
            if int(start) > k:
                break
            for name, value in self.schedule[start].items():
                values[name] = {**values[name], **value} if name == "explore" else value
        return LearnConfig(**{**values, "schedule": {}})

    def explore_settings(self) -> ExploreSettings:
        values = dict(self.explore)
        nested = {"md": MDSettings, "relax": RelaxSettings, "guard": Guard}
        for name, cls in nested.items():
            if name in values:
                values[name] = cls(**values[name])
        for name in ("sizes", "temperatures"):
            if name in values:
                values[name] = tuple(values[name])
        return ExploreSettings(**values)


def save_config(config: LearnConfig, out: Path) -> None:
    (out / "learn.yaml").write_text(yaml.safe_dump(asdict(config), sort_keys=False))


def load_config(out: Path) -> LearnConfig:
    path = out / "learn.yaml"
    if not path.is_file():
        raise InputError(f"{out}: nothing to resume (no learn.yaml)")
    return checked_config(yaml.safe_load(path.read_text()) or {}, path)


SCHEDULED = {"select", "low", "high", "per_trajectory", "per_size", "minima", "explore", "train_time", "ensemble"}


def checked_config(values: dict, path) -> LearnConfig:
    """A :class:`LearnConfig` from YAML values, or a one-line error naming the file and the field."""
    known = {f.name for f in fields(LearnConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"{path}: unknown field {unknown[0]!r}; known: {', '.join(sorted(known))}")
    for start, changes in (values.get("schedule") or {}).items():
        if not isinstance(start, int) or start < 0 or not isinstance(changes, dict):
            raise InputError(f"{path}: schedule: {start!r}: expected 'ROUND: {{field: value}}' with ROUND >= 0")
        wrong = sorted(set(changes) - SCHEDULED)
        if wrong:
            raise InputError(f"{path}: schedule: {start}: {wrong[0]!r} cannot change between rounds; "
                             f"can: {', '.join(sorted(SCHEDULED))}")
    config = LearnConfig(**values)
    for k in (0, *sorted(config.schedule, key=int)):
        ion = config.for_round(int(k)).explore.get("ion")
        if ion is not None and ion not in IONS:
            raise InputError(f"{path}: explore: ion {ion!r} (round {k} on): choose {', '.join(IONS)} or leave it out")
    return config


def learn(config: LearnConfig, train_committee, label, log=print) -> list[dict]:
    """Run the rounds not yet done; returns every round's record.

    ``train_committee(train_config, resume)`` trains a committee run and returns
    it loaded; ``label(selected_path, labelled_path)`` labels a file (resuming)
    and returns the input indices it could not label. Both are parameters so
    tests can stand in for DFT (:mod:`equiprop.learn.run` passes the real ones).
    """
    out = Path(config.out)
    records = []
    for k in range(config.rounds):
        records.append(run_round(config.for_round(k), k, out / f"round-{k}", train_committee, label, log))
        write_learning_curve(out, records)  # after every round: a run stopped later still has its curve
    return records


def run_round(config: LearnConfig, k: int, folder: Path, train_committee, label, log) -> dict:
    record_path = folder / "round.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"round": k}
    if record.get("stage") == "done":
        return record
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "selected.xyz").is_file():
        record.update(_train_explore_select(config, k, folder, train_committee, log))
        _write_json(record_path, {**record, "stage": "selected"})
    labelled = []
    if record.get("n_selected", 0) > 0:
        start = time.perf_counter()
        skipped = label(folder / "selected.xyz", folder / "labelled.xyz")
        record["label_seconds"] = record.get("label_seconds", 0.0) + time.perf_counter() - start
        record["scf_skipped"] = sorted(set(record.get("scf_skipped", [])) | set(skipped))
        labelled = read_structures(folder / "labelled.xyz") if (folder / "labelled.xyz").is_file() else []
    record.update(new_frame_scores(labelled), stage="done")
    _write_json(record_path, record)
    if not labelled:
        log(f"round {k}: nothing selected (every candidate below the low or above the high threshold)")
        return record
    log(f"round {k}: {record['n_labelled']} new frames; before training on them the committee had force RMSE "
        f"{1000 * record['forces_rmse']:.0f} meV/A, energy MAE {1000 * record['energy_mae_per_atom']:.1f} meV/atom")
    return record


def _train_explore_select(config: LearnConfig, k: int, folder: Path, train_committee, log) -> dict:
    seed = config.seed * 1000 + k
    data = training_frames(config, k)
    write_structures(folder / "train.xyz", data, overwrite=True)
    train_config = {**config.train, "data": str(folder / "train.xyz"), "ensemble": config.ensemble,
                    "max_time": config.train_time, "seed": seed, "out": str(folder / "committee")}
    start = time.perf_counter()
    committee, test_frames = train_committee(train_config, (folder / "committee" / "config.yaml").is_file())
    train_seconds = time.perf_counter() - start
    in_domain = float(np.percentile(score(committee, test_frames)[0], 90))  # the spread on data like the training data
    low = config.low if config.low is not None else in_domain
    start = time.perf_counter()
    earlier = [a for j in range(k) for a in _minima_of(Path(config.out) / f"round-{j}")]
    found = explore(committee, config.explore_settings(), seed, earlier, log, cache=folder / "explore")
    scores, predicted = score(committee, found.candidates)
    explore_seconds = time.perf_counter() - start
    rule = Selection(config.select, low, config.high, per_trajectory=config.per_trajectory, minima=config.minima,
                     per_size=config.per_size)
    chosen = select(found.candidates, scores, rule, known=data)
    write_structures(folder / "candidates.xyz", found.candidates, overwrite=True)
    if found.minima:
        write_structures(folder / "minima.xyz", found.minima, overwrite=True)
    _write_candidates_csv(folder / "candidates.csv", found.candidates, scores)
    selected = [_with_predictions(found.candidates[i], predicted, i, scores[i], k) for i in chosen]
    write_structures(folder / "selected.xyz", selected, overwrite=True)
    log(f"round {k}: {len(found.candidates)} candidates, scores {np.median(scores):.3f} median, "
        f"{scores.max():.3f} max eV/A; {len(chosen)} selected in [{low:.3f}, {config.high}]")
    return {"n_training_frames": len(data), "n_candidates": len(found.candidates), "n_minima": len(found.minima),
            "n_selected": len(chosen), "low": low, "high": config.high, "stops": found.stops,
            "train_seconds": train_seconds, "explore_seconds": explore_seconds,
            "candidates_above_high": int((scores > config.high).sum()), "candidates_below_low": int((scores < low).sum()),
            "in_domain_score": in_domain, "candidates_above_in_domain": int((scores > in_domain).sum())}


def training_frames(config: LearnConfig, k: int) -> list[Atoms]:
    """The base data and every frame labelled in rounds before ``k`` (predictions dropped)."""
    from equiprop.datasets import water_pbe0_path
    from equiprop.train.config import TrainConfig
    from equiprop.train.prepare import read_data

    if config.base_data is None:
        frames = read_structures(water_pbe0_path())
    else:  # a file, or a name `equiprop train --data` knows (water+ions)
        frames, _ = read_data(TrainConfig(data=config.base_data))
    return frames + [a for a in labelled_frames(Path(config.out)) if a.info["round"] < k]


def labelled_frames(out: Path) -> list[Atoms]:
    """Every round's DFT-labelled frames, in round order, predictions dropped (what ``--export`` writes)."""
    frames = []
    for folder in sorted(Path(out).glob("round-*"), key=lambda f: int(f.name.split("-")[1])):
        if (folder / "labelled.xyz").is_file():
            frames += [strip_predictions(a) for a in read_structures(folder / "labelled.xyz")]
    return frames


def strip_predictions(atoms: Atoms) -> Atoms:
    atoms = atoms.copy()
    for key in [k for k in atoms.info if k.startswith(PREDICTION_PREFIX)]:
        del atoms.info[key]
    for key in [k for k in atoms.arrays if k.startswith(PREDICTION_PREFIX)]:
        del atoms.arrays[key]
    return atoms


def _minima_of(folder: Path) -> list[Atoms]:
    """The minima a round found (``minima.xyz``; before that file existed, from the scratch ``candidates.xyz``)."""
    if (folder / "minima.xyz").is_file():
        return read_structures(folder / "minima.xyz")
    path = folder / "candidates.xyz"
    return [a for a in read_structures(path) if a.info.get("sample") == "minimum"] if path.is_file() else []


def _with_predictions(atoms: Atoms, predicted: dict, i: int, value: float, k: int) -> Atoms:
    frame = atoms.copy()
    frame.info.update(round=k, score=float(value))
    for key, values in predicted.items():
        target = frame.arrays if is_per_atom(key) else frame.info
        target[PREDICTION_PREFIX + key] = np.asarray(values[i], dtype=float)
    return frame


def new_frame_scores(labelled: list[Atoms]) -> dict:
    """Errors of the committee's predictions (made before training on them) against the new DFT labels."""
    from scipy.stats import spearmanr

    if not labelled:
        return {"n_labelled": 0, "forces_rmse": float("nan"), "forces_mae": float("nan"), "energy_mae_per_atom": float("nan")}
    force_errors = [a.arrays["pred_forces"] - a.arrays["dft_forces"] for a in labelled]
    per_structure = np.array([np.sqrt((e**2).mean()) for e in force_errors])
    spread = np.array([a.arrays["pred_forces_std"].mean() for a in labelled])
    flat = np.concatenate([e.ravel() for e in force_errors])
    energy = np.array([abs(a.info["pred_energy"] - a.info["dft_energy"]) / len(a) for a in labelled])
    varied = len(labelled) > 2 and np.ptp(spread) > 0 and np.ptp(per_structure) > 0
    rho = float(spearmanr(spread, per_structure).statistic) if varied else float("nan")
    return {"n_labelled": len(labelled), "forces_rmse": float(np.sqrt((flat**2).mean())),
            "forces_mae": float(np.abs(flat).mean()), "energy_mae_per_atom": float(energy.mean()),
            "spearman_spread_error": rho, "mean_score": float(np.mean([a.info["score"] for a in labelled])),
            "min_heavy_distance": float(min(min_heavy_distance(a) for a in labelled))}


def _write_candidates_csv(path: Path, candidates: list[Atoms], scores: np.ndarray) -> None:
    rows = ["index,trajectory,sample,n_atoms,temperature_K,time_fs,min_heavy_distance,score"]
    for i, (a, s) in enumerate(zip(candidates, scores)):
        rows.append(f"{i},{a.info.get('trajectory', '')},{a.info.get('sample', '')},{len(a)},"
                    f"{a.info.get('md_temperature', '')},{a.info.get('md_time_fs', '')},{min_heavy_distance(a):.3f},{s:.5f}")
    path.write_text("\n".join(rows) + "\n")


def write_learning_curve(out: Path, records: list[dict]) -> None:
    """``learning_curve.csv`` and ``.png``: per round, labels so far, the new frames' errors and scores."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in records if r.get("stage") == "done"]
    rows = ["round,n_training_frames,n_labelled,mean_score,forces_rmse,energy_mae_per_atom,spearman_spread_error"]
    for r in done:
        rows.append(f"{r['round']},{r['n_training_frames']},{r['n_labelled']},{r.get('mean_score', float('nan')):.4f},"
                    f"{r['forces_rmse']:.4f},{r['energy_mae_per_atom']:.5f},{r.get('spearman_spread_error', float('nan')):.3f}")
    (out / "learning_curve.csv").write_text("\n".join(rows) + "\n")
    if not done:
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    x = [r["round"] for r in done]
    ax.plot(x, [1000 * r["forces_rmse"] for r in done], "o-", label="force RMSE on the new frames")
    ax.plot(x, [1000 * r.get("mean_score", np.nan) for r in done], "s--", label="mean score (max force spread)")
    ax.set_xlabel("round (committee before training on the round's frames)")
    ax.set_ylabel("meV/Angstrom")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "learning_curve.png", dpi=120)
    plt.close(fig)


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=2, default=float))
    tmp.replace(path)
