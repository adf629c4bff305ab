"""Inference time and peak memory of SO3Net on periodic liquid-water boxes, 192 to 24,000 atoms.

Each size runs in a fresh process (so its peak RSS is its own); one untimed call, then the
median of ``--passes`` timed calls of ``model.predict`` (energy + forces, charges, dipole):
``python bench/scaling.py [--repeats 1 2 3 4 5] [--device cuda] [--out docs/scaling.json]``.
On a GPU the peak is also reported for GPU memory (``torch.cuda.max_memory_allocated``);
times include the neighbour list (vesin, on the CPU) and the copies to and from the device.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def water_box(repeat: int, seed: int = 0):
    """64 randomly oriented waters on a jittered 4x4x4 grid in a 12.42 A cube (1 g/cm3), repeated."""
    from ase import Atoms
    from ase.build import molecule
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    side, n = 12.42, 4
    box = Atoms(cell=[side] * 3, pbc=True)
    for k in range(n**3):
        water = molecule("H2O")
        water.positions = Rotation.random(random_state=rng).apply(water.positions - water.positions[0])
        water.positions += (np.array([k % n, (k // n) % n, k // n**2]) + 0.5) * side / n + rng.normal(scale=0.1, size=3)
        box += water
    return box.repeat(repeat)


def measure(repeat: int, cutoff: float, device: str, passes: int) -> dict:
    import torch

    import equiprop

    torch.set_num_threads(2)
    torch.set_flush_denormal(True)
    atoms = water_box(repeat)
    model = equiprop.SO3Net(elements=["H", "O"], cutoff=cutoff, lmax=2, features=32, interactions=3,
                            targets=["charges", "dipole", "energy"], avg_neighbors=20.0).to(device)
    model.predict([atoms])  # warm-up; predict() copies the results to the host, so the timing ends after the GPU's work
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        model.predict([atoms])
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    row = {"atoms": len(atoms), "seconds": seconds, "passes": passes, "us_per_atom": 1e6 * seconds / len(atoms),
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--cutoff", type=float, default=4.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--passes", type=int, default=3, help="timed calls after one warm-up; the median is reported")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: measure one size
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one, args.cutoff, args.device, args.passes)))
        return
    rows = []
    for repeat in args.repeats:
        done = subprocess.run([sys.executable, __file__, "--one", str(repeat), "--cutoff", str(args.cutoff), "--device", args.device,
                               "--passes", str(args.passes)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            rows.append({"repeat": repeat, "error": done.stderr.strip().splitlines()[-1:]})
            break
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"{rows[-1]['atoms']:>7d} atoms  {rows[-1]['seconds']:8.2f} s  {rows[-1]['us_per_atom']:7.1f} us/atom  "
              f"{rows[-1]['peak_rss_mib']:8.0f} MiB" + (f"  GPU {rows[-1]['peak_gpu_mib']:8.0f} MiB" if "peak_gpu_mib" in rows[-1] else ""),
              flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
