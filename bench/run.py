"""Side-by-side benchmark: equiprop against schnetpack and MACE, in one run on one machine.

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
]
ERRORS = [("charges_e", "charges (e)", 1.0), ("dipole_eA", "dipole (me*A)", 1000.0),
          ("energy_meV_per_atom", "energy (meV/atom)", 1.0), ("forces_meV_per_A", "forces (meV/A)", 1.0)]


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


def table(results: list[dict]) -> str:
    ran = [r for r in results if "failed" not in r]
    reference = next((r for r in ran if r["label"] == JOBS[0][0]), ran[0] if ran else None)
    gpu = any("peak_gpu_mib" in r for r in results)
    head = ["model", "params", "train structures/s", "x equiprop SO3Net", "inference structures/s (atoms/s)", "peak RSS MiB"]
    head += ["peak GPU MiB"] * gpu + [name for _, name, _ in ERRORS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if "failed" in r:
            lines.append("| " + " | ".join([r["label"], f"failed: {r['failed'].replace('|', '/')}"] + ["-"] * (len(head) - 2)) + " |")
            continue
        speed, ours = r["train_structures_per_s"], reference["train_structures_per_s"]
        timed = speed is not None and ours is not None  # None: the budget ended within the warm-up steps
        row = [r["label"], f"{r['n_params']:,}", f"{speed:.0f}" if speed else "-", f"{speed / ours:.2f}" if timed else "-",
               f"{r['inference']['structures_per_s']:.0f} ({r['inference']['atoms_per_s']:,.0f})", f"{r['peak_memory_mib']:.0f}"]
        row += [f"{r['peak_gpu_mib']:.0f}" if "peak_gpu_mib" in r else "-"] * gpu
        for key, _, factor in ERRORS:
            value = r["test_mae"].get(key)
            row.append("-" if value is None else f"{value * factor:.3g}")
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
    args = parser.parse_args()
    if args.setup:
        subprocess.run(["bash", "bench/peers/setup_peers.sh"], cwd=ROOT, check=True)
    out_dir = Path(args.out_dir)
    split = out_dir / "split"
    write_split(split)
    common = [*COMMON, "--threads", str(args.threads), "--device", args.device]
    jobs = [j for j in JOBS if (not args.only or any(j[0].startswith(p) for p in args.only))
            and (args.device.startswith("cuda") or "--no-cuda-graphs" not in j[3])  # eager twins: GPU runs only
            and not (args.device.startswith("cuda") and "--compile" in j[3])]  # compiled: CPU runs only
    timeout = args.budget + 600.0  # start-up, evaluation and inference take under a few minutes for every peer
    results = []
    for label, venv, script, flags in jobs:
        python = sys.executable if venv is None else str(Path(args.venvs) / venv / "bin" / "python")
        results.append(run_job(label, python, script, flags, args.budget, split, common, out_dir, args.allocator, timeout))
    text = table(results)
    print(text)
    command = "python bench/run.py " + " ".join(sys.argv[1:])
    where = " on GPU" if args.device.startswith("cuda") else ""
    doc = [f"## Side by side{where}, {datetime.date.today()}", "", f"Command: `{command}`", "",
           f"Machine: {machine(args.device, args.threads)}", "",
           f"Each model trained for {args.budget:.0f} s of training steps on the shipped PBE0 water data (320 train / "
           "40 val / 40 test, seed 0), batch 16, cutoff 4 A, 32 features, float32, loss weights energy 0.03 "
           "(per atom, normalised), forces 1, dipole 1, charges 1. Errors: test MAE. "
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
