"""A model's error on the rigid water pairs of ``data/water-apart``, by O-O distance.

``python bench/pair_errors.py CHECKPOINT [CHECKPOINT ...]`` (run from the repository root). The
6-atom frames of ``data/water-apart`` are two rigid waters of one geometry, so the model's energy
error on each is twice its monomer error plus its error on the interaction. With the median error
of the pairs beyond 6.5 A O-O (out of the cutoff's reach for a 5 A model) as the monomers' part,
each distance bin prints the mean and median error of the interaction, meV (negative: the model
binds too strongly). Most of these pairs are training data of the mixed recipes
(docs/benchmarks.md "Formal charges as features").
"""

import argparse
from pathlib import Path

import ase.io
import numpy as np

from equiprop.models.checkpoint import load_model

DATA = Path(__file__).parent.parent / "data" / "water-apart"
BINS = (2.5, 3.5, 4.5, 5.0, 5.5, 6.0, 6.5, 9.0)  # O-O, A
FAR = 6.5


def pairs() -> list:
    """The two-water frames (O, H, H, O, H, H) of data/water-apart."""
    frames = [a for name in ("labelled.xyz", "labelled-2.xyz") for a in ase.io.read(DATA / name, ":")]
    return [a for a in frames if a.get_chemical_symbols() == ["O", "H", "H", "O", "H", "H"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoints", nargs="+")
    args = parser.parse_args()
    frames = pairs()
    reference = np.array([a.info["dft_energy"] for a in frames])
    oo = np.array([np.linalg.norm(a.positions[0] - a.positions[3]) for a in frames])
    print("O-O bin (A)  " + " ".join(f"{f'{lo:g}-{hi:g}':>10}" for lo, hi in zip(BINS, BINS[1:])))
    print("pairs        " + " ".join(f"{int(((oo >= lo) & (oo < hi)).sum()):>10}" for lo, hi in zip(BINS, BINS[1:])))
    for path in args.checkpoints:
        model = load_model(path).double()
        error = 1000 * (np.array(model.predict(frames)["energy"], dtype=float).ravel() - reference)  # [n_pairs], meV
        error -= np.median(error[oo >= FAR])
        cells = []
        for lo, hi in zip(BINS, BINS[1:]):
            chosen = error[(oo >= lo) & (oo < hi)]
            cells.append(f"{chosen.mean():+5.1f}/{np.median(chosen):+5.1f}" if chosen.size else f"{'-':>10}")
        print(f"{path}\n  mean/median " + " ".join(f"{c:>10}" for c in cells))


if __name__ == "__main__":
    main()
