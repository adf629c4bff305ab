"""The MD-safety starts of issue 18: held-out minima of 5-8 waters, isomer ranks 0 and 1 (8 clusters).

``python bench/heldout_starts.py OUT.xyz [--minima data/heldout-minima/labelled.xyz] [--sizes 5-8] [--ranks 2]``
"""

import argparse

from equiprop.cli.label import parse_sizes
from equiprop.data.io import read_structures, write_structures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--minima", default="data/heldout-minima/labelled.xyz")
    parser.add_argument("--sizes", default="5-8")
    parser.add_argument("--ranks", type=int, default=2, help="keep isomer ranks 0 .. RANKS-1 of each size")
    args = parser.parse_args()
    sizes = set(parse_sizes(args.sizes))
    frames = read_structures(args.minima)
    starts = [a for a in frames if a.info["isomer_of"] in sizes and a.info["isomer_rank"] < args.ranks]
    write_structures(args.out, starts)
    print(f"wrote {len(starts)} starts to {args.out}")


if __name__ == "__main__":
    main()
