"""Checks and timings that need a CUDA GPU (run by bench/gpu.sh on a lent GPU; docs/benchmarks.md).

``python bench/gpu_checks.py [--device cuda] [--run-dir /tmp/gpu_run]``:

1. the same weights on the CPU and on the GPU in float64 give the same charges,
   dipoles, energies and forces (SchNet and SO3Net, paired and unpaired edges);
2. the command line trains, evaluates, checks symmetry and predicts with
   ``--device cuda`` (the shipped data, a few epochs);
3. SO3Net training-step throughput against the batch size, with the GPU's busy
   fraction (CUDA kernel time over wall time) from the torch profiler: how far
   a small batch is from filling the GPU.

Exit status 1 if a check fails; timings are printed, not asserted.
"""

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import ase.io
import torch

import equiprop
from equiprop import datasets
from equiprop.data import collate, frames_to_graphs

TARGETS = ["charges", "dipole", "energy"]


def make_model(name: str):
    common = dict(elements=["H", "O"], cutoff=4.0, features=32, interactions=3, targets=TARGETS)
    return equiprop.SO3Net(lmax=2, **common) if name == "so3net" else equiprop.SchNet(**common)


def cpu_gpu_agreement(device: str) -> bool:
    """Largest relative difference per output between CPU and GPU, float64, same weights."""
    frames = datasets.water_pbe0()[:24]
    ok = True
    for name in ("schnet", "so3net"):
        torch.manual_seed(0)
        model = make_model(name).double()
        graphs = frames_to_graphs(frames, model.type_map, model.cutoff)
        for paired in (True, False):
            batch = collate(graphs)
            batch = batch if paired else replace(batch, paired_edges=False)
            model.cpu()
            cpu = model(batch.to("cpu", torch.float64), compute_forces=True)
            model.to(device)
            gpu = model(batch.to(device, torch.float64), compute_forces=True)
            for prop, ref in cpu.items():
                got = gpu[prop].detach().cpu()
                rel = float((got - ref.detach()).norm() / ref.detach().norm().clamp_min(1e-300))
                good = rel < 1e-10 and bool(torch.isfinite(got).all())
                ok &= good
                print(f"  {name:6s} {'paired' if paired else 'unpaired':8s} {prop.value:8s} |gpu - cpu| / |cpu| = {rel:.1e}"
                      f"  {'ok' if good else 'FAIL'}")
    return ok


def command_line(device: str, run_dir: str) -> bool:
    """train / evaluate / check / predict through ``python -m equiprop`` on the GPU."""
    structures = f"{run_dir}_input.xyz"
    ase.io.write(structures, datasets.water_pbe0()[:16], format="extxyz")
    steps = [
        ["train", "--out", run_dir, "--overwrite", "--epochs", "3", "--device", device],
        ["evaluate", f"{run_dir}/best.pt", "--device", device, "--json"],
        ["check", f"{run_dir}/best.pt", "--device", device, "--n-structures", "8"],
        ["predict", f"{run_dir}/best.pt", structures, f"{run_dir}/predicted.xyz", "--device", device, "--overwrite"],
    ]
    ok = True
    for step in steps:
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "equiprop", *step], capture_output=True, text=True)
        tail = (done.stdout.strip().splitlines() or [""])[-1][:200]
        print(f"  equiprop {step[0]:9s} rc {done.returncode}  {time.perf_counter() - start:5.1f} s  {tail}")
        if done.returncode != 0:
            print("    " + "\n    ".join(done.stderr.strip().splitlines()[-6:]))
            ok = False
    return ok


def throughput(device: str, batch_sizes: list[int]) -> None:
    """SO3Net training steps (energy+forces, dipole, charges) per batch size: structures/s and GPU busy fraction."""
    torch.manual_seed(0)
    model = make_model("so3net").to(device)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, fused=True)
    frames = datasets.water_pbe0()
    graphs = frames_to_graphs(frames, model.type_map, model.cutoff)

    def step(batch):
        out = model(batch, compute_forces=True)
        loss = sum(out[p].pow(2).mean() for p in out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for size in batch_sizes:
        batches = [collate(graphs[k : k + size]).to(device, torch.float32) for k in range(0, len(graphs) - size + 1, size)]
        for batch in batches[:3]:
            step(batch)
        torch.cuda.synchronize()
        rates = []
        for _ in range(3):
            start = time.perf_counter()
            for batch in batches:
                step(batch)
            torch.cuda.synchronize()
            rates.append(len(batches) * size / (time.perf_counter() - start))
        print(f"  batch {size:4d}: {statistics.median(rates):7.0f} structures/s (median of 3 passes over {len(batches)} batches)",
              end="", flush=True)
        try:
            print(", {:5.0f} kernels per step, GPU busy {:4.1f}% (profiled)".format(*kernel_load(step, batches[:5])))
        except Exception as error:  # the profiler is a diagnostic: its failure must not end the checks
            print(f", profiler failed: {error!r}")


def kernel_load(step, batches) -> tuple[float, float]:
    """CUDA kernels per step and the sum of kernel times over the wall time (percent), from the torch profiler."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        for batch in batches:
            step(batch)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.time_range.elapsed_us() for e in kernels) * 1e-6 / wall
    return len(kernels) / len(batches), 100.0 * busy


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--run-dir", default="/tmp/equiprop_gpu_run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 64, 256])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_checks.py needs a CUDA GPU (torch.cuda.is_available() is False)")
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | equiprop {equiprop.__version__}")
    print("1. CPU and GPU agree (float64, same weights, 24 structures):")
    agree = cpu_gpu_agreement(args.device)
    print("2. command line on the GPU:")
    cli = command_line(args.device, args.run_dir)
    print("3. SO3Net training throughput on the GPU against the batch size:")
    throughput(args.device, args.batch_sizes)
    print(f"checks: CPU/GPU agreement {'ok' if agree else 'FAILED'}, command line {'ok' if cli else 'FAILED'}")
    sys.exit(0 if agree and cli else 1)


if __name__ == "__main__":
    main()
