"""``equiprop predict``: write predictions into a copy of the frames."""

import numpy as np

from equiprop.data.io import read_structures, write_structures
from equiprop.errors import InputError
from equiprop.keys import is_per_atom
from equiprop.models.predict import DIPOLE_KEYS
from equiprop.models.checkpoint import load_model

PREFIX = "pred_"


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "predict", help="add pred_* keys to the frames of a structure file (a committee adds pred_*_std)",
        description="Writes pred_charges, pred_dipole, pred_energy, pred_forces. A committee checkpoint (train --ensemble N) "
                    "writes the members' means and their spread: pred_energy_std (eV), pred_dipole_std (e*A), "
                    "pred_forces_std (per atom, eV/A) and pred_charges_std (e); vector spreads are the RMS over the "
                    "three components of the members' standard deviation.")
    parser.add_argument("checkpoint")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--overwrite", action="store_true", help="allow replacing the output (or the input)")
    parser.add_argument("--compile", action="store_true",
                        help="evaluate through torch.compile: for thousands of structures. On 2 CPU cores, compiling "
                             "took ~50 s (10 s from the disk cache), then batches of water clusters ran 1.7x faster "
                             "(docs/performance.md, step 25); 64 clusters: 58 s, cached 16 s, eager 6 s. Needs a C++ compiler")
    parser.set_defaults(run=run_predict)


def run_predict(args) -> int:
    from pathlib import Path

    same = Path(args.output).resolve() == Path(args.input).resolve()
    if same and not args.overwrite:
        raise InputError(f"{args.output}: is the input file; pass --overwrite to replace it")
    model = load_model(args.checkpoint, args.device)
    frames = read_structures(args.input)
    out = model.predict(frames, batch_size=args.batch_size, source=args.input, compile=args.compile)
    periodic = sorted(k for k, atoms in enumerate(frames) if atoms.pbc.any())
    skipped = set(periodic)
    for k, atoms in enumerate(frames):
        for key, values in out.items():
            if key in DIPOLE_KEYS and k in skipped:  # NaN: a cell has no dipole
                continue
            value = np.asarray(values[k], dtype=float)
            if not is_per_atom(key) and value.ndim == 2:  # a 3x3 (quadrupole) in info: 9 numbers, row-major
                value = value.reshape(-1)
            (atoms.arrays if is_per_atom(key) else atoms.info)[PREFIX + key] = value
    write_structures(args.output, frames, overwrite=args.overwrite)
    print(f"wrote {len(frames)} structures with {', '.join(PREFIX + k for k in out)} to {args.output}")
    if periodic and DIPOLE_KEYS & out.keys():
        print(f"no {PREFIX}dipole for the {len(periodic)} periodic structures (first: {periodic[0]}): "
              "a cell's dipole depends on how its atoms are wrapped")
    return 0
