"""Pieces shared by the commands that use a trained checkpoint."""

import json
from pathlib import Path

from equiprop.data.io import read_structures
from equiprop.data.typemap import TypeMap
from equiprop.models.checkpoint import load_checkpoint, model_from_checkpoint
from equiprop.train.config import TrainConfig
from equiprop.train.data import LabelledSet, labelled_set
from equiprop.train.prepare import label_keys, prepare_data


#: Targets whose label key ``--NAME-key`` overrides the run's.
LABELLED = ("energy", "dipole", "charges", "forces", "stress", "quadrupole", "polarizability")


def add_data_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="checkpoint file, e.g. RUN_DIR/best.pt")
    parser.add_argument("--data", help="extxyz file (default: the run's held-out test split)")
    for name in LABELLED:
        parser.add_argument(f"--{name}-key", help=f"label key of {name} (default: the run's)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def load_for_use(args):
    """(model, config) from ``args.checkpoint``."""
    payload = load_checkpoint(args.checkpoint)
    return model_from_checkpoint(payload, args.checkpoint, args.device).eval(), TrainConfig(**payload["config"])


def labelled_data(args, model, config: TrainConfig, targets) -> tuple[LabelledSet, str]:
    """The data to evaluate on (``--data`` or the run's test split) and its name."""
    overrides = {f"{n}_key": getattr(args, f"{n}_key") for n in LABELLED}
    config = TrainConfig(**{**config.to_dict(), **{k: v for k, v in overrides.items() if v}})
    type_map = TypeMap(tuple(model.hparams["elements"]))
    if not args.data:
        return prepare_data(config, type_map).test, "held-out test split"
    frames = read_structures(args.data)
    return labelled_set(frames, targets, label_keys(config), type_map, model.cutoff, args.data), args.data


def emit_json(obj) -> None:
    print(json.dumps(obj, indent=None, default=float))


def output_dir(path: str | None, default: Path) -> Path:
    out = Path(path) if path else default
    out.mkdir(parents=True, exist_ok=True)
    return out
