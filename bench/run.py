"""Side-by-side benchmark: equiprop against schnetpack, MACE, NequIP and DimeNet++, in one run on one machine.

``.venv/bin/python bench/run.py --budget 300 [--setup] [--scaling]`` writes the
split, trains every model for the same time budget on it (each in its own
process and virtual environment), prints the table and writes
``docs/benchmarks.md``. Peers need ``bash bench/peers/setup_peers.sh`` once
(``--setup`` runs it). ``--device cuda`` runs every job on a GPU; on a GPU machine
without network, ``bash bench/gpu.sh`` sets the peers up from carried wheels and
calls this script (bench/peers/README.md).
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np

from equiprop.data.split import split_indices
from equiprop.datasets import water_pbe0
from equiprop.models.allocator import ENVIRONMENT as KEEP_FREED_MEMORY

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
COMMON = ["--batch-size", "16", "--cutoff", "4.0", "--features", "32"]

#: (label, peer venv under --venvs or None for this interpreter, script, extra flags)
JOBS = [
    ("equiprop SO3Net (lmax 2)", None, "bench/equiprop_bench.py", ["--model", "so3net", "--interactions", "3", "--lmax", "2"]),
    ("equiprop SchNet", None, "bench/equiprop_bench.py", ["--model", "schnet", "--interactions", "3"]),
    # l = 2 only in the edges' spherical harmonics, features l <= 1 (as the MACE row's 32x0e+32x1o): [E, 4, F] edge tensors
    ("equiprop SO3Net (l<=1 features, l<=2 harmonics)", None, "bench/equiprop_bench.py",
     ["--model", "so3net", "--interactions", "3", "--lmax", "1", "--sh-lmax", "2"]),
    # torch.compile (experimental, CPU runs only: on a GPU it would turn the CUDA graphs off); compiling counts in the budget
    ("equiprop SO3Net (l<=1 features, l<=2 harmonics, compiled)", None, "bench/equiprop_bench.py",
     ["--model", "so3net", "--interactions", "3", "--lmax", "1", "--sh-lmax", "2", "--compile"]),
    ("equiprop SO3Net (lmax 2, compiled)", None, "bench/equiprop_bench.py",
     ["--model", "so3net", "--interactions", "3", "--lmax", "2", "--compile"]),
    # on a GPU the two above replay CUDA graphs (equiprop's default there); these two run eagerly, for comparison
    ("equiprop SO3Net (lmax 2, eager)", None, "bench/equiprop_bench.py",
     ["--model", "so3net", "--interactions", "3", "--lmax", "2", "--no-cuda-graphs"]),
    ("equiprop SchNet (eager)", None, "bench/equiprop_bench.py", ["--model", "schnet", "--interactions", "3", "--no-cuda-graphs"]),
    ("schnetpack SchNet", "schnetpack", "bench/peers/run_schnetpack.py", ["--model", "schnet", "--interactions", "3"]),
    ("schnetpack PaiNN", "schnetpack", "bench/peers/run_schnetpack.py", ["--model", "painn", "--interactions", "3"]),
    ("schnetpack SO3net (lmax 2)", "schnetpack", "bench/peers/run_schnetpack.py", ["--model", "so3net", "--interactions", "3", "--lmax", "2"]),
    ("MACE EnergyDipolesMACE", "mace", "bench/peers/run_mace.py", ["--interactions", "2", "--targets", "energy,forces,dipole"]),
    ("NequIP", "nequip", "bench/peers/run_nequip.py", ["--interactions", "3", "--targets", "energy,forces"]),
    # DimeNet++ (torch_geometric) on graphs and triplets computed once per structure (bench/peers/run_dimenet.py)
    ("DimeNet++", "pyg", "bench/peers/run_dimenet.py", ["--interactions", "3"]),
]
ERRORS = [("charges_e", "charges (e)", 1.0), ("dipole_eA", "dipole (me*A)", 1000.0),
          ("energy_meV_per_atom", "energy (meV/atom)", 1.0), ("forces_meV_per_A", "forces (meV/A)", 1.0)]


#: What ``--recipe`` gives every model (bench/peers/peer_common.py, Recipe; equiprop: its TrainConfig).
RECIPE_TEXT = {
    "shared": "equiprop's: moving average of the weights (decay 0.99, warmed up), learning rate halved after 5 epochs "
              "without validation improvement down to 1e-5, the best averaged weights on validation tested",
    "none": "constant learning rate, no moving average, the last weights tested",
}


def write_split(folder: Path) -> None:
    frames = water_pbe0()
    split = split_indices(len(frames), val=0.1, test=0.1, seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "val", "test"):
        ase.io.write(folder / f"{name}.xyz", [frames[k] for k in getattr(split, name)], format="extxyz")


def run_job(label, python, script, flags, budget, split, common=COMMON, out_dir=OUT, allocator="equal",
            timeout: float | None = None) -> dict:
    """Run one model's benchmark script in its own process (and venv); its JSON report.

    ``common`` holds the flags every job gets (sizes, threads, device); a job
    still running after ``timeout`` seconds is stopped. A job that did not run
    or failed gives ``{"label": ..., "failed": reason}``: the table lists it.
    """
    if not (ROOT / python).exists() and not Path(python).exists():
        print(f"skip {label}: {python} missing (run bash bench/peers/setup_peers.sh)")
        return {"label": label, "failed": f"not installed ({Path(python).parent.parent.name}: bash bench/peers/setup_peers.sh)"}
    out = Path(out_dir) / (label.replace(" ", "_").replace("(", "").replace(")", "") + ".json")
    env = dict(os.environ)  # jobs run one after another: keep the machine otherwise idle (docs/performance.md)
    if allocator == "equal":
        env.update(KEEP_FREED_MEMORY)  # the malloc setting equiprop applies in-process, for the peers too
    command = [python, script, "--split-dir", str(split), "--budget", str(budget), *common, *flags, "--out", str(out)]
    print(f"run {label} ...", flush=True)
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  failed: still running after {timeout:.0f} s, stopped")
        return {"label": label, "failed": f"still running after {timeout:.0f} s, stopped"}
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-5:]
        print("  failed:\n    " + "\n    ".join(tail))
        return {"label": label, "failed": f"exit {done.returncode}: {(tail or [''])[-1][:120]}"}
    result = json.loads(out.read_text())
    result["label"] = label
    summary = {k: result.get(k) for k in ("n_params", "train_structures_per_s", "epochs", "peak_memory_mib", "peak_gpu_mib",
                                          "cuda_graphs") if k in result}
    print(f"  {json.dumps({**summary, 'inference': result['inference'], 'test_mae': result['test_mae']})}", flush=True)
    return result


def combine(label: str, runs: list[dict], lr: str) -> dict:
    """One row from the runs of several seeds: means, and each value's spread (standard deviation) under ``spread``."""
    ran = [r for r in runs if "failed" not in r]
    if not ran:
        return {"label": label, "failed": runs[0]["failed"] if runs else "no seeds"}
    row = {**ran[0], "label": label, "lr": lr, "seeds": len(ran), "failed_seeds": len(runs) - len(ran), "spread": {}}
    speeds = [r["train_structures_per_s"] for r in ran if r["train_structures_per_s"] is not None]
    row["train_structures_per_s"] = float(np.mean(speeds)) if speeds else None
    row["spread"]["train_structures_per_s"] = float(np.std(speeds)) if len(speeds) > 1 else None
    row["test_mae"], row["spread"]["test_mae"] = {}, {}
    for key in ran[0]["test_mae"]:
        values = [r["test_mae"][key] for r in ran if r["test_mae"].get(key) is not None]
        row["test_mae"][key] = float(np.mean(values)) if values else None
        row["spread"]["test_mae"][key] = float(np.std(values)) if len(values) > 1 else None
    for key in ("structures_per_s", "atoms_per_s"):
        row["inference"] = {**row["inference"], key: float(np.mean([r["inference"][key] for r in ran]))}
    row["peak_memory_mib"] = float(np.max([r["peak_memory_mib"] for r in ran]))
    return row


def _cell(value, spread, factor: float = 1.0, digits: str = ".3g") -> str:
    if value is None:
        return "-"
    text = f"{value * factor:{digits}}"
    return text + (f" ± {spread * factor:{digits}}" if spread is not None else "")


def table(results: list[dict]) -> str:
    ran = [r for r in results if "failed" not in r]
    reference = next((r for r in ran if r["label"] == JOBS[0][0]), ran[0] if ran else None)
    gpu = any("peak_gpu_mib" in r for r in results)
    head = ["model", "params", "lr", "seeds", "train structures/s", "x equiprop SO3Net", "inference structures/s (atoms/s)",
            "peak RSS MiB"]
    head += ["peak GPU MiB"] * gpu + [name for _, name, _ in ERRORS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if "failed" in r:
            lines.append("| " + " | ".join([r["label"], f"failed: {r['failed'].replace('|', '/')}"] + ["-"] * (len(head) - 2)) + " |")
            continue
        speed, ours = r["train_structures_per_s"], reference["train_structures_per_s"]
        timed = speed is not None and ours is not None  # None: the budget ended within the warm-up steps
        spread = r.get("spread", {})
        seeds = f"{r.get('seeds', 1)}" + (f" ({r['failed_seeds']} failed)" if r.get("failed_seeds") else "")
        row = [r["label"], f"{r['n_params']:,}", str(r.get("lr", "default")), seeds,
               _cell(speed, spread.get("train_structures_per_s"), digits=".0f") if speed else "-",
               f"{speed / ours:.2f}" if timed else "-",
               f"{r['inference']['structures_per_s']:.0f} ({r['inference']['atoms_per_s']:,.0f})", f"{r['peak_memory_mib']:.0f}"]
        row += [f"{r['peak_gpu_mib']:.0f}" if "peak_gpu_mib" in r else "-"] * gpu
        for key, _, factor in ERRORS:
            row.append(_cell(r["test_mae"].get(key), spread.get("test_mae", {}).get(key), factor))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def machine(device: str, threads: int) -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    load = os.getloadavg()[0]
    text = f"{model}, {os.cpu_count()} cores, {threads} threads per job, Python {platform.python_version()}"
    if device.startswith("cuda"):
        import torch

        text = f"{torch.cuda.get_device_name(torch.device(device))} (torch {torch.__version__}), " + text
    return text + f", load average {load:.2f} at the end"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=300.0, help="seconds of training steps per model")
    parser.add_argument("--setup", action="store_true", help="install the peers first")
    parser.add_argument("--scaling", action="store_true", help="also run bench/scaling.py")
    parser.add_argument("--only", nargs="*", help="labels (prefixes) of the jobs to run")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: every job, and the scaling")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per job")
    parser.add_argument("--out-dir", default=str(OUT), help="the split and each job's JSON report")
    parser.add_argument("--venvs", default=str(ROOT / "bench" / ".venvs"),
                        help="folder of the peers' environments: VENVS/schnetpack/bin/python, VENVS/mace/bin/python")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"), help="markdown file the table is appended to")
    parser.add_argument("--allocator", choices=["equal", "shipped"], default="equal",
                        help="equal: every job with the malloc setting equiprop uses; shipped: peers with glibc's defaults")
    parser.add_argument("--recipe", choices=["shared", "none"], default="shared",
                        help="shared: every model gets equiprop's recipe (moving average, plateau schedule, best on "
                             "validation); none: constant learning rate, last weights, for every model")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run per seed; mean and spread")
    parser.add_argument("--lr-search", type=float, nargs="*", default=[],
                        help="learning rates to try per model (seed 0, --search-budget each); the lowest validation "
                             "loss wins (default: each library's own default rate)")
    parser.add_argument("--search-budget", type=float, default=None, help="seconds per trial (default: --budget / 3)")
    parser.add_argument("--grad-clip", type=float, default=10.0, help="gradient-norm clip for every model")
    args = parser.parse_args()
    if args.setup:
        subprocess.run(["bash", "bench/peers/setup_peers.sh"], cwd=ROOT, check=True)
    out_dir = Path(args.out_dir)
    split = out_dir / "split"
    write_split(split)
    common = [*COMMON, "--threads", str(args.threads), "--device", args.device, "--recipe", args.recipe,
              "--grad-clip", str(args.grad_clip)]
    jobs = [j for j in JOBS if (not args.only or any(j[0].startswith(p) for p in args.only))
            and (args.device.startswith("cuda") or "--no-cuda-graphs" not in j[3])  # eager twins: GPU runs only
            and not (args.device.startswith("cuda") and "--compile" in j[3])]  # compiled: CPU runs only
    timeout = args.budget + 600.0  # start-up, evaluation and inference take under a few minutes for every peer
    results = []
    for label, venv, script, flags in jobs:
        python = sys.executable if venv is None else str(Path(args.venvs) / venv / "bin" / "python")
        lr_flags = []
        if args.lr_search:
            budget = args.search_budget or args.budget / 3
            trials = {lr: run_job(f"{label} lr {lr:g}", python, script, [*flags, "--lr", str(lr), "--seed", "0"], budget,
                                  split, common, out_dir, args.allocator, budget + 600.0) for lr in args.lr_search}
            ran = {lr: r for lr, r in trials.items() if "failed" not in r and r.get("val_loss") is not None}
            if not ran:
                results.append({"label": label, "failed": "every learning-rate trial failed"})
                continue
            lr = min(ran, key=lambda rate: ran[rate]["val_loss"])
            print(f"  {label}: learning rate {lr:g} (validation losses "
                  + ", ".join(f"{rate:g}: {r['val_loss']:.4g}" for rate, r in ran.items()) + ")", flush=True)
            lr_flags = ["--lr", str(lr)]
        runs = [run_job(f"{label} seed {seed}", python, script, [*flags, *lr_flags, "--seed", str(seed)], args.budget,
                        split, common, out_dir, args.allocator, timeout) for seed in args.seeds]
        results.append(combine(label, runs, lr_flags[1] if lr_flags else "default"))
    text = table(results)
    print(text)
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    where = " on GPU" if args.device.startswith("cuda") else ""
    doc = [f"## Side by side{where}, {datetime.date.today()}", "", f"Command: `{command}`", "",
           f"Machine: {machine(args.device, args.threads)}", "",
           f"Each model trained for {args.budget:.0f} s of training steps on the shipped PBE0 water data (320 train / "
           "40 val / 40 test, seed 0), batch 16, cutoff 4 A, 32 features, float32, loss weights energy 0.03 "
           "(per atom, normalised), forces 1, dipole 1, charges 1, gradient-norm clip "
           f"{args.grad_clip:g} for every model. Errors: test MAE, mean ± standard deviation over seeds "
           f"{', '.join(map(str, args.seeds))} (training speed likewise). "
           + (f"Recipe for every model: {RECIPE_TEXT[args.recipe]}. ")
           + (f"Learning rate per model: the lowest validation loss of {', '.join(f'{x:g}' for x in args.lr_search)} "
              f"(seed 0, {args.search_budget or args.budget / 3:.0f} s each). " if args.lr_search else
              "Learning rate: each library's default (equiprop SO3Net 1e-2 and SchNet 2e-3 since 2026-12-07, "
              "2e-3 for both before; schnetpack 5e-4, MACE 1e-2). ")
           + ("Every job ran with glibc's malloc keeping freed memory (`MALLOC_MMAP_THRESHOLD_`, "
              "`MALLOC_TRIM_THRESHOLD_`: what equiprop sets in its own process), so no model gains from the allocator."
              if args.allocator == "equal" else "The peers ran with glibc's default malloc settings.")
           + (" equiprop's models replay each training step from a CUDA graph (its default on a GPU; the time to "
              "record the graphs counts); the rows marked eager do not." if where else ""), "", text, ""]
    if args.scaling:
        repeats = ["--repeats", "1", "2", "3", "4", "5", "6", "8"] if args.device.startswith("cuda") else []
        done = subprocess.run([sys.executable, "bench/scaling.py", "--device", args.device, *repeats], cwd=ROOT,
                              capture_output=True, text=True)
        doc += ["### Inference scaling (SO3Net, periodic liquid water, energy + forces)", "", "```", done.stdout.strip("\n"), "```", ""]
        print(done.stdout)
    Path(args.doc).write_text(Path(args.doc).read_text() + "\n".join(doc) + "\n" if Path(args.doc).exists() else
                              "# Benchmarks\n\n" + "\n".join(doc) + "\n")


if __name__ == "__main__":
    main()
