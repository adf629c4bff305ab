"""Entry point: ``equiprop <command> ...`` (also ``python -m equiprop``)."""

import argparse
import json
import sys

from equiprop.cli import check, evaluate, export, ipi, label, learn, md, predict, spectrum, train
from equiprop.errors import InputError, MissingExtraError, SetupError
from equiprop.models.allocator import keep_freed_memory


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equiprop", description="Invariant (SchNet) and equivariant (SO3Net) models of molecular properties."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    label.add_commands(commands)
    train.add_commands(commands)
    evaluate.add_commands(commands)
    predict.add_commands(commands)
    check.add_commands(commands)
    learn.add_commands(commands)
    ipi.add_commands(commands)
    export.add_commands(commands)
    md.add_commands(commands)
    spectrum.add_commands(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # reuse freed tensor memory instead of page-faulting on every step (models/allocator.py)
    try:
        return args.run(args)
    except (InputError, MissingExtraError, SetupError, argparse.ArgumentTypeError) as error:
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())  # one line
        if getattr(args, "json", False):
            print(json.dumps({"error": message}))
        else:
            print(f"equiprop {args.command}: error: {message}", file=sys.stderr)
        return 2
