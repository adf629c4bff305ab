"""equiprop's entry in the side-by-side benchmark (same split, flags and JSON as bench/peers/).

Run in the project's venv: ``python bench/equiprop_bench.py --model so3net --split-dir DIR --budget 300``.
"""

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import ase.io
import torch
from ase.data import atomic_numbers

import equiprop
from equiprop.data.labels import LabelKeys
from equiprop.data.typemap import TypeMap
from equiprop.keys import Property
from equiprop.models.graphed import GraphedInference
from equiprop.models.compiled import compiled_inference
from equiprop.train.config import TrainConfig
from equiprop.train.data import batch_order, labelled_set, make_batch
from equiprop.train.evaluate import evaluate, predictions
from equiprop.train.loop import Trainer
from equiprop.train.prepare import Splits, build_model, fit_normalization, mean_neighbors, resolved

NAMES = {"charges": "charges_e", "dipole": "dipole_eA", "energy": "energy_meV_per_atom", "forces": "forces_meV_per_A",
         "dipole_magnitude": "dipole_magnitude_eA"}


def parse_args():
    """The peers' flags (bench/peers/peer_common.py), so every library gets the same settings."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
    from peer_common import build_parser

    # default_lr None: TrainConfig's per-model default (train/config.py DEFAULT_LR)
    parser = build_parser(__doc__, ["so3net", "schnet"], default_lr=None, default_grad_clip=10.0)
    parser.add_argument("--sh-lmax", type=int, default=None, help="equiprop train --sh-lmax (so3net; default: --lmax)")
    parser.add_argument("--electrostatics", default="auto", help="equiprop train --electrostatics (default: auto, as a user gets)")
    parser.add_argument("--compile", action="store_true", help="equiprop train --compile (compile time counts in the budget)")
    parser.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                        help="equiprop train --(no-)cuda-graphs (default: on where possible; recording counts in the budget)")
    return parser.parse_args()


#: The weights each recipe tests (bench/peers/peer_common.py, Recipe): the best averaged ones, or the last.
WEIGHTS = {"shared": "best.pt", "none": "last.pt"}


def recipe_settings(args) -> dict:
    """TrainConfig fields of ``--recipe``: equiprop's own recipe (shared with the peers), or none of it."""
    if args.recipe == "shared":
        return {"ema_decay": args.ema_decay, "lr_factor": args.lr_factor, "lr_patience": args.lr_patience,
                "min_lr": args.min_lr}
    return {"ema_decay": 0.0, "lr_patience": 10**9}


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    targets = Property.parse(args.targets)
    weights = {f"{t.value}_weight": getattr(args, f"{t.value}_weight") for t in targets}
    config = TrainConfig(model=args.model, targets=[t.value for t in targets], cutoff=args.cutoff, features=args.features,
                         interactions=args.interactions, lmax=args.lmax, sh_lmax=args.sh_lmax, batch_size=args.batch_size, epochs=100000,
                         max_time=args.budget, early_stopping=100000, lr=args.lr, grad_clip=args.grad_clip or 1e30,
                         **recipe_settings(args),
                         device=args.device, seed=args.seed, compile=args.compile, cuda_graphs=args.cuda_graphs,
                         electrostatics=args.electrostatics, **weights)
    keys = LabelKeys(energy=args.energy_key, dipole=args.dipole_key, charges=args.charges_key, forces=args.forces_key,
                     dipole_magnitude=args.dipole_magnitude_key)
    frames = {name: ase.io.read(Path(args.split_dir) / f"{name}.xyz", ":") for name in ("train", "val", "test")}
    symbols = {s for part in frames.values() for atoms in part for s in atoms.get_chemical_symbols()}
    type_map = TypeMap(tuple(sorted(symbols, key=atomic_numbers.get)))
    sets = {name: labelled_set(part, targets, keys, type_map, args.cutoff, name) for name, part in frames.items()}
    config = resolved(config, Splits(**sets, type_map=type_map))
    torch.manual_seed(args.seed)
    model = build_model(config, type_map, mean_neighbors(sets["train"])).to(args.device)
    scales = fit_normalization(model, sets["train"])
    timing = {}

    def on_step(trainer):  # throughput from training-step time only, after warm-up
        if trainer.progress.step == args.warmup_batches:
            timing["start"] = (trainer.progress.elapsed, trainer.progress.step)

    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, model, sets["train"], sets["val"], scales, run_dir, log=lambda m: None)
        trainer.on_step = on_step
        progress = trainer.fit()
        val_rows = (Path(run_dir) / "metrics.csv").read_text().splitlines()
        last_val = float(val_rows[-1].split(",")[val_rows[0].split(",").index("val_loss")])
        best = equiprop.models.checkpoint.load_model(Path(run_dir) / WEIGHTS[args.recipe], args.device)
    seconds = progress.elapsed - timing["start"][0]
    structures = (progress.step - timing["start"][1]) * args.batch_size
    test = evaluate(best, sets["test"], args.batch_size).metrics
    report = {
        "library": "equiprop", "version": equiprop.__version__, "model": args.model,
        "n_params": sum(p.numel() for p in best.parameters()), "targets": [t.value for t in targets],
        "train_structures_per_s": structures / seconds,
        "inference": inference(best, sets["test"], args),
        "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        **({"peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20} if args.device.startswith("cuda") else {}),
        "test_mae": {**{NAMES[t]: m["mae"] for t, m in test.items() if t in NAMES}, **energy_per_structure(best, sets["test"], args)},
        "epochs": progress.step * args.batch_size / len(sets["train"]), "train_seconds": progress.elapsed,
        "val_loss": progress.best_val if args.recipe == "shared" else last_val,  # the tested weights' (the peers' loss)
        "steps": progress.step, "host": {"loadavg_1min_end": os.getloadavg()[0], "threads": torch.get_num_threads()},
        "settings": {"recipe": args.recipe, "lr": config.lr, "grad_clip": args.grad_clip, "seed": args.seed,
                     "electrostatics": config.electrostatics,
                     "weights": WEIGHTS[args.recipe], **recipe_settings(args)},
    }
    if trainer.graphs is not None:
        graphs = trainer.graphs
        report["cuda_graphs"] = {"recorded": graphs.n_graphs, "replayed": graphs.replays, "eager": graphs.eager_steps}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def energy_per_structure(model, data, args) -> dict:
    """Test MAE of the total energy per structure (meV), as QM9 papers report it."""
    if Property.ENERGY not in model.targets:
        return {}
    errors = [(pred[Property.ENERGY] - labels[Property.ENERGY]).abs() for _, labels, pred in predictions(model, data, args.batch_size)]
    return {"energy_meV": 1000.0 * float(torch.cat(errors).mean())}


def inference(model, data, args) -> dict:
    """Structures and atoms per second of energy+forces and dipole (and charges), batch ``batch_size``.

    The way the model was trained decides the way it infers: CUDA graphs on a GPU, ``torch.compile``
    with ``--compile``, else eager. The first pass (recording or compiling) is not timed."""
    reference = next(model.parameters())
    graphed = reference.is_cuda and args.cuda_graphs is not False  # equiprop's default on a GPU (models/graphed.py)
    device = "cpu" if graphed else reference.device  # graphed batches are copied into the graphs' static inputs
    batches = [make_batch(data, idx, device, reference.dtype)[0] for idx in batch_order(len(data), args.batch_size, False)]
    n_atoms = sum(g.n_atoms for g in data.graphs)
    if graphed:
        run = GraphedInference(model, args.batch_size)
    elif args.compile:  # as predict(compile=True) and the ASE calculator do; compiled in the untimed first pass
        run = compiled_inference(model)
    else:
        run = lambda batch: model(batch, compute_forces=Property.ENERGY in model.targets)  # noqa: E731

    def one_pass():
        for batch in batches:
            run(batch)
        if reference.is_cuda:
            torch.cuda.synchronize()

    torch.set_flush_denormal(True)
    one_pass()
    passes, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.inference_seconds:
        one_pass()
        passes += 1
    elapsed = time.perf_counter() - start
    return {"structures_per_s": passes * len(data) / elapsed, "atoms_per_s": passes * n_atoms / elapsed}


if __name__ == "__main__":
    main()
