"""Held-out hydrogen-bonded minima for testing: relax random clusters with a model, keep distinct isomers.

``python bench/heldout_minima.py CHECKPOINT OUT.xyz [--sizes 3-8] [--starts 6] [--keep 3] [--seed 1000]``

For each size, ``--starts`` random clusters (``make-clusters`` recipe, seeds
disjoint from ``equiprop learn``'s, which uses the round number) are relaxed
with the model (BFGS, the loop's settings); the minima that pass the guard are
deduplicated (sorted-distance fingerprint, 0.05 A RMS) and the ``--keep``
lowest in the model's energy are written with ``info["sample"] = "minimum"``
and ``info["isomer_of"]`` (the size). Label them with ``equiprop label OUT.xyz
LABELLED.xyz``; ``equiprop evaluate`` then reports errors on them and the
errors of energies relative to the lowest isomer of each size.

These minima are the model's, not PBE0's, and the set is for testing only: no
training run reads it (``equiprop learn`` never sees the file).
"""

import argparse
import sys

import numpy as np

from equiprop.calculator import EquipropCalculator
from equiprop.cli.label import parse_sizes
from equiprop.data.io import write_structures
from equiprop.labelling.clusters import make_clusters
from equiprop.learn.select import fingerprint, rms_difference
from equiprop.sampling.minima import relax


def distinct_minima(calc, n_molecules: int, starts: int, seed: int, duplicate_rms: float = 0.05) -> list:
    """Distinct guarded minima of ``n_molecules`` waters, lowest model energy first."""
    found = []
    for k, cluster in enumerate(make_clusters("H2O", [n_molecules], starts, seed=seed)):
        minimum, problem = relax(cluster, calc)
        if problem:
            print(f"{n_molecules} waters, start {k}: {problem}", file=sys.stderr)
            continue
        minimum.calc = calc
        energy = minimum.get_potential_energy()
        minimum.calc = None
        if all(rms_difference(fingerprint(minimum), fingerprint(other)) > duplicate_rms for other, _ in found):
            found.append((minimum, energy))
    return [m for m, _ in sorted(found, key=lambda pair: pair[1])]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--sizes", default="3-8")
    parser.add_argument("--starts", type=int, default=6, help="random starts per size")
    parser.add_argument("--keep", type=int, default=3, help="lowest distinct minima kept per size")
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args(argv)
    calc = EquipropCalculator(args.checkpoint)
    kept = []
    for n in parse_sizes(args.sizes):
        minima = distinct_minima(calc, n, args.starts, seed=args.seed + n)[: args.keep]
        for rank, atoms in enumerate(minima):
            atoms.info.update(isomer_of=n, isomer_rank=rank, trajectory=f"heldout-{args.seed + n}")
        kept += minima
        print(f"{n} waters: {len(minima)} distinct minima kept", file=sys.stderr)
    write_structures(args.output, kept)
    print(f"{args.output}: {len(kept)} minima of sizes {args.sizes}; {np.mean([len(a) for a in kept]):.1f} atoms on average")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
