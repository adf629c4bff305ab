"""Is a model safe for molecular dynamics of water clusters? 300 K Langevin MD from hydrogen-bonded minima.

``python bench/md_safety.py CHECKPOINT [--starts minima.xyz] [--sizes 5-8] [--per-size 2] [--ps 2] [--seed 0]``

Starting structures: ``--starts`` (any extxyz of clusters; for example minima
from ``equiprop learn``'s ``candidates.xyz``, or your own), else
``make-clusters`` random clusters of ``--sizes`` relaxed with the model itself
(BFGS). Each start runs ``--ps`` picoseconds of Langevin NVT (0.5 fs, friction
0.01/fs) as one replica of ``equiprop.sampling.md.run_replicas``, with a frame
every 10 fs. A trajectory fails at the first frame whose closest O-O distance
is below 2.2 A (no such distance occurs in liquid water at 300 K) or whose
hydrogen has left its oxygen (> 1.35 A). Prints each trajectory's fate and
the number that survive; asserts nothing (timings and outcomes are printed).
"""

import argparse
import sys
import time

import numpy as np

from equiprop.calculator import EquipropCalculator
from equiprop.cli.label import parse_sizes
from equiprop.data.io import read_structures
from equiprop.labelling.clusters import make_clusters
from equiprop.sampling.guard import Guard, min_heavy_distance
from equiprop.sampling.md import MDSettings, run_replicas
from equiprop.sampling.minima import relax


def starting_structures(args, calc) -> list:
    if args.starts:
        return read_structures(args.starts)
    sizes = parse_sizes(args.sizes)
    starts = []
    for k, cluster in enumerate(make_clusters("H2O", sizes, len(sizes) * args.per_size, seed=args.seed)):
        minimum, problem = relax(cluster, calc)
        print(f"start {k}: {len(cluster) // 3} waters, relaxed" + (f" ({problem})" if problem else ""), file=sys.stderr)
        if problem is None:
            starts.append(minimum)
    return starts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--starts", help="extxyz of starting clusters (default: model-relaxed make-clusters)")
    parser.add_argument("--sizes", default="5-8")
    parser.add_argument("--per-size", type=int, default=2)
    parser.add_argument("--ps", type=float, default=2.0)
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    calc = EquipropCalculator(args.checkpoint)
    starts = starting_structures(args, calc)
    settings = MDSettings(temperature=args.temperature, duration_fs=1000 * args.ps, interval_fs=10.0)
    guard = Guard(min_heavy_distance=2.2, max_hydrogen_distance=1.35)
    start = time.perf_counter()
    runs = run_replicas(starts, calc, settings, seed=args.seed, guard=guard)
    seconds = time.perf_counter() - start
    survived = 0
    for k, (atoms, run) in enumerate(zip(starts, runs)):
        closest = min([min_heavy_distance(f) for f in run.frames] or [np.nan])
        fate = f"failed {run.stopped}" if run.stopped else f"survived {args.ps:g} ps"
        survived += run.stopped is None
        print(f"{k}: {len(atoms) // 3} waters, closest O-O while in bounds {closest:.2f} A, {fate}")
    print(f"{survived} of {len(runs)} trajectories survived {args.ps:g} ps at {args.temperature:g} K "
          f"(O-O >= 2.2 A); {seconds:.0f} s of MD")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
