"""Entry point: ``equiprop <command> ...`` (also ``python -m equiprop``)."""

import argparse
import json
import sys

from equiprop.cli import check, evaluate, label, predict, train
from equiprop.errors import InputError, MissingExtraError


def _demo(args: argparse.Namespace) -> int:
    """Placeholder main job until training lands: predict with an untrained SO3Net."""
    from ase.build import molecule

    import equiprop

    frames = [molecule("H2O"), molecule("H2O") + molecule("H2O")]
    frames[1].positions[3:] += [2.9, 0.0, 0.0]
    model = equiprop.SO3Net(elements=["H", "O"], cutoff=4.0, targets=["charges", "dipole", "energy"])
    out = model.predict(frames)
    print("untrained SO3Net (training arrives with the train command):")
    for k in range(len(frames)):
        print(f"  structure {k}: energy {out['energy'][k]:+.4f} eV, dipole {out['dipole'][k].round(4).tolist()} e*A")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="equiprop", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the main job").set_defaults(run=_demo)
    label.add_commands(commands)
    train.add_commands(commands)
    evaluate.add_commands(commands)
    predict.add_commands(commands)
    check.add_commands(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (InputError, MissingExtraError, argparse.ArgumentTypeError) as error:
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())  # one line
        if getattr(args, "json", False):
            print(json.dumps({"error": message}))
        else:
            print(f"equiprop {args.command}: error: {message}", file=sys.stderr)
        return 2
