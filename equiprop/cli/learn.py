"""``equiprop learn``: active learning with a committee and the PySCF labeller."""

import sys
from pathlib import Path

from equiprop.errors import InputError

HELP = """Rounds of: train a committee (train --ensemble) on the base data plus every frame labelled so far;
explore with it (BFGS minima of random clusters, then Langevin MD from the minima at each temperature, many clusters
per model call); score every explored frame by its largest per-atom committee force spread; select the most uncertain
frames between --low and --high without near-duplicates; label them with PySCF (resumable); record the committee's
errors on them before it trains on them. Output: OUT/round-K/{selected,labelled}.xyz, round.json, candidates.csv,
OUT/learning_curve.{csv,png}. Interrupted runs continue with --resume OUT."""


def add_commands(commands) -> None:
    parser = commands.add_parser("learn", help="active learning: committee, MD/minima, select, DFT label, retrain",
                                 description=HELP)
    parser.add_argument("out", help="run folder (OUT/learn.yaml, OUT/round-K/...)")
    parser.add_argument("--config", help="YAML of LearnConfig fields (equiprop/learn/loop.py)")
    parser.add_argument("--resume", action="store_true", help="continue OUT (its learn.yaml; --rounds may grow)")
    parser.add_argument("--rounds", type=int, help="number of rounds (default 4)")
    parser.add_argument("--ensemble", type=int, help="committee members (default 3)")
    parser.add_argument("--train-time", type=float, help="seconds of training per committee and round (default 240)")
    parser.add_argument("--select", type=int, help="frames labelled per round (default 40)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--export", metavar="FILE", help="write every round's labelled frames (predictions dropped) "
                        "to FILE (extxyz) and stop")
    parser.add_argument("--overwrite", action="store_true", help="with --export: replace an existing FILE")
    parser.set_defaults(run=run_learn_command)


def run_learn_command(args) -> int:
    from equiprop.learn.loop import checked_config, load_config, save_config
    from equiprop.learn.run import run_learn

    out = Path(args.out)
    if args.export:
        return export(out, Path(args.export), overwrite=args.overwrite)
    flags = {name: getattr(args, name) for name in ("rounds", "ensemble", "train_time", "select", "seed")
             if getattr(args, name) is not None}
    if args.resume:
        config = load_config(out)
        changed = [k for k in flags if k != "rounds" and flags[k] != getattr(config, k)]
        if changed:
            raise InputError(f"{out}: cannot change {', '.join(changed)} when resuming (only --rounds)")
        config.rounds = flags.get("rounds", config.rounds)
    else:
        if (out / "learn.yaml").exists():
            raise InputError(f"{out}: a learn run exists; pass --resume to continue it")
        values = _read_config(Path(args.config)) if args.config else {}
        config = checked_config({**values, **flags, "out": str(out)}, args.config or "flags")
        out.mkdir(parents=True, exist_ok=True)
    save_config(config, out)
    run_learn(config, log=lambda m: print(m, file=sys.stderr))
    return 0


def export(out: Path, path: Path, overwrite: bool = False) -> int:
    from equiprop.data.io import write_structures
    from equiprop.learn.loop import labelled_frames, load_config

    load_config(out)  # a learn run folder, or a one-line error
    frames = labelled_frames(out)
    if not frames:
        raise InputError(f"{out}: no labelled frames yet (no round-K/labelled.xyz)")
    write_structures(path, frames, overwrite=overwrite)
    print(f"wrote {len(frames)} labelled frames from {out} to {path}")
    return 0


def _read_config(path: Path) -> dict:
    import yaml

    if not path.is_file():
        raise InputError(f"{path}: no such config file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a mapping of LearnConfig fields")
    return values
