"""Random instead of active selection, with the same budget: the control for ``equiprop learn``'s choice.

``python bench/random_selection.py data/learn-water-pbe0 ROUND OUT.xyz [--n 40] [--seed 0]``

Draws ``--n`` frames uniformly at random (no score, no caps) from the candidates
that round ``ROUND`` explored (``round-ROUND/candidates.xyz``: the same MD frames
and minima the committee chose its 40 from), without the committee's predictions.
Then label them and train on the same data as the active run, with round
``ROUND``'s active frames replaced by these::

    equiprop label OUT.xyz OUT-labelled.xyz
    # active: the random set + rounds 0..ROUND of the run; random: the same with round ROUND replaced
    equiprop evaluate RUN/best.pt --data data/heldout-minima/labelled.xyz
    python bench/md_safety.py RUN/best.pt --starts <held-out minima of 5-8 waters>

``--training-sets LABELLED ACTIVE.xyz RANDOM.xyz`` writes the two arms' training data instead: the
shipped random placements plus the run's labelled frames of rounds 0 .. ROUND-1, then round ROUND's
active frames (ACTIVE.xyz) or the labelled random draw LABELLED (RANDOM.xyz).

(docs/active-learning.md gives the commands and the numbers once measured.)
"""

import argparse
from pathlib import Path

import numpy as np

from equiprop.data.io import read_structures, write_structures
from equiprop.datasets import water_pbe0


def random_frames(run: Path, round_index: int, n: int, seed: int) -> list:
    candidates = read_structures(run / f"round-{round_index}" / "candidates.xyz")
    if n > len(candidates):
        raise SystemExit(f"{run}/round-{round_index}/candidates.xyz: {len(candidates)} candidates, fewer than --n {n}")
    picked = np.sort(np.random.default_rng(seed).choice(len(candidates), size=n, replace=False))
    frames = []
    for k in picked:
        atoms = candidates[int(k)].copy()
        atoms.info.update(candidate=int(k), round=round_index, selection="random")
        frames.append(atoms)
    return frames


def training_sets(run: Path, round_index: int, labelled: str, active_out: str, random_out: str) -> int:
    """Write both arms: random placements + rounds before ``round_index``, then the active or the random frames."""
    base = water_pbe0() + [a for k in range(round_index) for a in read_structures(run / f"round-{k}" / "labelled.xyz")]
    active = read_structures(run / f"round-{round_index}" / "labelled.xyz")
    drawn = read_structures(labelled)  # candidates carry info["sample"] (md or minimum)
    write_structures(active_out, base + active)
    write_structures(random_out, base + drawn)
    print(f"{active_out}: {len(base)} + {len(active)} active; {random_out}: {len(base)} + {len(drawn)} random")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="an equiprop learn directory")
    parser.add_argument("round", type=int)
    parser.add_argument("output")
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--training-sets", nargs=3, metavar=("LABELLED", "ACTIVE", "RANDOM"))
    args = parser.parse_args(argv)
    if args.training_sets:
        return training_sets(Path(args.run), args.round, *args.training_sets)
    frames = random_frames(Path(args.run), args.round, args.n, args.seed)
    write_structures(args.output, frames)
    sizes = sorted(len(a) // 3 for a in frames)
    print(f"{args.output}: {len(frames)} random candidates of round {args.round} ({sizes[0]}-{sizes[-1]} waters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
