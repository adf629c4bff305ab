"""QM9 learning curves: equiprop SchNet and SO3Net beside schnetpack SchNet and PaiNN, in one run.

``.venv/bin/python bench/qm9_learning_curve.py [--sizes 1000 5000] [--budgets 120 240]``

Needs ``pip install 'equiprop[qm9]'`` in the project venv and the schnetpack
venv (``bash bench/peers/setup_peers.sh``). Validation (500) and test (2,000)
molecules are fixed; the training sets are nested (the first 1,000 of the
5,000), all drawn with seed 0. Every model trains on U0 and |mu| together
(loss weights 1 each, normalised) for the given seconds of training steps,
batch 32, cutoff 5 Angstrom, 32 features, 3 interactions. Errors: test MAE
per molecule, |mu| in Debye and U0 in meV. Appends the table to
docs/benchmarks.md.
"""

import argparse
import datetime
import sys
from pathlib import Path

import ase.io
import numpy as np
from ase.units import Debye

from equiprop.datasets import qm9
from run import OUT, ROOT, machine, run_job

COMMON = ["--batch-size", "32", "--cutoff", "5.0", "--features", "32", "--interactions", "3", "--threads", "2",
          "--targets", "energy,dipole_magnitude", "--energy-key", "U0", "--dipole-magnitude-key", "dipole_magnitude",
          "--energy-weight", "1.0", "--dipole-magnitude-weight", "1.0"]
SPK = "bench/.venvs/schnetpack/bin/python"
JOBS = [
    ("equiprop SchNet", sys.executable, "bench/equiprop_bench.py", ["--model", "schnet"]),
    ("equiprop SO3Net (lmax 2)", sys.executable, "bench/equiprop_bench.py", ["--model", "so3net", "--lmax", "2"]),
    ("schnetpack SchNet", SPK, "bench/peers/run_schnetpack.py", ["--model", "schnet"]),
    ("schnetpack PaiNN", SPK, "bench/peers/run_schnetpack.py", ["--model", "painn"]),
]
#: Full-data figures (110k training molecules) for reference: Schütt, Unke, Gastegger, "Equivariant message
#: passing for the prediction of tensorial properties and molecular spectra", ICML 2021 (arXiv:2102.03150), Table 2.
PUBLISHED = [("SchNet, 110k training molecules (published)", 0.033, 14.0), ("PaiNN, 110k training molecules (published)", 0.012, 5.85)]


def write_splits(sizes: list[int], n_val: int, n_test: int) -> dict[int, Path]:
    """extxyz train/val/test folders per training size (nested training sets, fixed val and test)."""
    order = np.random.default_rng(0).permutation(130831)
    test, val, pool = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    frames = qm9(indices=np.concatenate([test, val, pool[: max(sizes)]]))
    test_frames, val_frames, train_frames = frames[:n_test], frames[n_test : n_test + n_val], frames[n_test + n_val :]
    folders = {}
    for n in sizes:
        folder = OUT / f"qm9_{n}"
        folder.mkdir(parents=True, exist_ok=True)
        for name, part in (("train", train_frames[:n]), ("val", val_frames), ("test", test_frames)):
            ase.io.write(folder / f"{name}.xyz", part, format="extxyz")
        folders[n] = folder
    return folders


def table(results: list[tuple[int, dict]]) -> str:
    lines = ["| model | training molecules | params | epochs | train molecules/s | test MAE abs(mu) (D) | test MAE U0 (meV) |",
             "|---|---|---|---|---|---|---|"]
    for n, r in results:
        mu = r["test_mae"].get("dipole_magnitude_eA")
        u0 = r["test_mae"].get("energy_meV")
        lines.append(f"| {r['label']} | {n:,} | {r['n_params']:,} | {r['epochs']:.0f} | {r['train_structures_per_s']:.0f} | "
                     f"{'-' if mu is None else f'{mu / Debye:.3f}'} | {'-' if u0 is None else f'{u0:.0f}'} |")
    for label, mu, u0 in PUBLISHED:
        lines.append(f"| {label} | 110,000 | | | | {mu} | {u0} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--budgets", type=float, nargs="+", default=[120.0, 240.0], help="seconds per size")
    parser.add_argument("--only", nargs="*", help="labels (prefixes) of the jobs to run")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    if len(args.budgets) != len(args.sizes):
        parser.error("give one budget per size")
    folders = write_splits(args.sizes, n_val=500, n_test=2000)
    jobs = [j for j in JOBS if not args.only or any(j[0].startswith(p) for p in args.only)]
    results = []
    for n, budget in zip(args.sizes, args.budgets):
        for label, python, script, flags in jobs:
            result = run_job(f"{label} {n}", python, script, flags, budget, folders[n], common=COMMON, out_dir=OUT / "qm9")
            if result is not None:
                result["label"] = label
                results.append((n, result))
    text = table(results)
    print(text)
    command = "python bench/qm9_learning_curve.py " + " ".join(sys.argv[1:])
    budgets = ", ".join(f"{b:.0f} s for {n:,}" for n, b in zip(args.sizes, args.budgets))
    doc = [f"## QM9 learning curves, {datetime.date.today()}", "", f"Command: `{command}`", "", f"Machine: {machine('cpu', 2)}", "",
           f"Training time per model: {budgets} molecules (seconds of training steps). Fixed 500 validation and "
           "2,000 test molecules (seed 0); U0 and |mu| trained together (normalised loss, weights 1), batch 32, "
           "cutoff 5 A, 32 features, 3 interactions, float32. Published rows: full QM9 training (110k molecules, "
           "days of GPU training), from Schütt, Unke, Gastegger, ICML 2021 (arXiv:2102.03150), Table 2.", "", text, ""]
    path = Path(args.doc)
    path.write_text(path.read_text() + "\n".join(doc) + "\n")


if __name__ == "__main__":
    main()
