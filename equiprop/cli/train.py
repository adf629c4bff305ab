"""``equiprop train``: flags generated one-to-one from :class:`TrainConfig`."""

import argparse
import sys
import types
import typing
from dataclasses import fields
from pathlib import Path

from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.train.config import TrainConfig, load_yaml

HELP = {
    "model": "schnet or so3net", "targets": "comma-separated, of " + ",".join(p.value for p in Property),
    "data": "extxyz file, water+ions (the shipped neutral and H3O+/OH- clusters) or qm9 (needs equiprop[qm9]); default: the shipped PBE0 water clusters", "test_data": "explicit test file",
    "max_time": "stop training after this many seconds", "out": "run directory", "device": "cpu, cuda or cuda:N (under torchrun, cuda = each rank's GPU)",
    "num_workers": "DataLoader worker processes building batches (0: none)",
    "compile": "torch.compile the model's outputs and forces: on a CPU, about 2 min to compile SO3Net (cached on disk "
               "after the first run), then about 1.5x faster training (docs/benchmarks.md); needs a C++ compiler; "
               "fails on a GPU under PyTorch 2.11 (there CUDA graphs are the default); works under torchrun",
    "cuda_graphs": "record each training step once as a CUDA graph and replay it (batches padded to a few sizes; "
                   "8-10x faster on an H100 in docs/benchmarks.md); default: on for one process on a CUDA device "
                   "without --compile",
    "sh_lmax": "so3net: degree of the edges' spherical harmonics, lmax to 2*lmax (default lmax); "
               "--lmax 1 --sh-lmax 2 trained 1.7x faster than --lmax 2 on 2 CPU cores (docs/benchmarks.md)",
    "repulsion": "ZBL screened repulsion for named pairs closer than a radius, switched off over its last 0.4 A, "
                 "e.g. O-O:2.3 (a floor where data are thin; docs/active-learning.md measures it); default none",
    "electrostatics": "none, coulomb (the charges' damped Coulomb energy over all pairs, no cutoff), multipole "
                      "(charges, atomic dipoles and, with the quadrupole target, atomic quadrupoles; so3net with the "
                      "dipole target; periodic cells are Ewald-summed) or polarizable (multipole plus each atom's dipole "
                      "induced by the multipoles beyond the cutoff, first order; clusters only); docs/benchmarks.md "
                      "measures them; default auto (for so3net with dipole and energy on clusters multipole, polarizable "
                      "when a structure is charged; else none)",
    "charge_spread": "uniform (the charge constraint shifts every atom of a structure alike), learned (by "
                     "per-atom weights, so a molecule far from an ion can stay neutral) or formal (formal charges from "
                     "hydrogen ownership plus the learned charges compensated along the graph: a molecule beyond the cutoff of "
                     "the rest keeps exactly its formal charge; for water, its ions and other hydrides); "
                     "docs/benchmarks.md; default auto (formal when a structure of the data is charged, else uniform)",
    "lr": "AdamW's learning rate; default 1e-2 for so3net, 2e-3 for schnet (measured on the shipped water: "
          "docs/active-learning.md)",
    "lr_schedule": "plateau (halve the learning rate when validation stalls) or budget (fall linearly from lr to "
                   "min_lr over --max-time, or over --epochs without it: a time-bounded run ends annealed)",
    "elements": "ordered type map, e.g. H,O (default: elements of the data by atomic number)",
}


def add_commands(commands) -> None:
    parser = commands.add_parser("train", help="train a model (config file and/or flags)")
    parser.add_argument("--config", help="YAML file of TrainConfig fields")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted or finished run")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    for f in fields(TrainConfig):
        _add_field(parser, f)
    parser.set_defaults(run=run_train)


def _add_field(parser, f) -> None:
    flag = "--" + f.name.replace("_", "-")
    kind = _base_type(f.type)
    if kind is bool:
        parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                            help=HELP.get(f.name))
    elif kind is list:
        parser.add_argument(flag, dest=f.name, type=lambda text: [v.strip() for v in text.split(",") if v.strip()],
                            default=argparse.SUPPRESS, help=HELP.get(f.name))
    else:
        parser.add_argument(flag, dest=f.name, type=kind, default=argparse.SUPPRESS, help=HELP.get(f.name))


def _base_type(annotation):
    """bool, int, float, str or list from a field annotation such as ``float | None``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """YAML values (or the saved config when resuming), then flags on top."""
    names = {f.name for f in fields(TrainConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    if args.resume:
        base = load_yaml(Path(args.resume) / "config.yaml")
        base["out"] = args.resume
    else:
        base = load_yaml(args.config) if args.config else {}
    try:
        return TrainConfig(**{**base, **flags})
    except TypeError as error:
        raise InputError(f"bad config value: {error}") from None


def run_train(args: argparse.Namespace) -> int:
    from equiprop.train.loop import TrainingStopped
    from equiprop.train.run import train

    config = config_from_args(args)
    try:
        train(config, resume=bool(args.resume), overwrite=args.overwrite, log=lambda m: print(m, file=sys.stderr))
    except TrainingStopped as stop:
        print(f"equiprop train: {stop}", file=sys.stderr)
        return stop.code
    return 0
