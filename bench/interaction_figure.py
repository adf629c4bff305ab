"""docs/figures/interaction_curves.png: the water dimer's and H3O+...H2O's interaction energy, models and PBE0;
docs/figures/dimer_tail_error.png: the dimer's model minus PBE0 from 4.5 A, against issue 22's 0.5 meV band.

``python bench/interaction_figure.py`` reads the CSVs of ``bench/dimer_curve.py`` in ``data/dimer/``
(columns: r_OO, then one per model, PBE0 last where computed).
"""

import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    rows = list(csv.reader(open(path)))
    return rows[0], [[float(v) for v in row] for row in rows[1:]]


def panel(ax, models_csv, pbe0_csv, pbe0_column, title):
    _, data = read(models_csv)
    for column, label in ((1, "none"), (2, "multipole")):
        ax.plot([x[0] for x in data], [x[column] for x in data], "o-", ms=3, label=label)
    _, reference = read(pbe0_csv)
    ax.plot([x[0] for x in reference], [x[pbe0_column] for x in reference], "k--", label="PBE0/def2-SVP")
    ax.axvline(4.0, color="grey", lw=0.5)  # the cutoff
    ax.set(xlabel="O-O distance (A)", ylabel="interaction energy (meV)", title=title)
    ax.legend()


def main() -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    panel(axes[0], "data/dimer/curve_multipole_default_300s.csv", "data/dimer/curve_round4_committee.csv", 2,
          "water dimer (neutral data)")
    panel(axes[1], "data/dimer/curve_h3o_h2o_300s.csv", "data/dimer/curve_h3o_h2o_300s.csv", 3,
          "H3O+ ... H2O (--data water+ions)")
    fig.tight_layout()
    fig.savefig("docs/figures/interaction_curves.png", dpi=110)
    tail_error()


def tail_error() -> None:
    """Model minus PBE0 (meV) beyond 4.5 A: multipoles on the sampled data at 4 A (1 seed) and 5 A (3 seeds), and 5 A
    with the separated pairs (3 seeds)."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    header, data = read("data/dimer/curve_cutoff_300s.csv")
    runs = [(data, 1, "sampled, cutoff 4 A", "C0")]
    runs += [(data, k, "sampled, cutoff 5 A" if k == 2 else None, "C1") for k in (2, 3, 4)]
    header, apart = read("data/dimer/curve_apart_cutoff_300s.csv")
    runs += [(apart, k, "+ 400 separated pairs, 5 A" if k == 2 else None, "C2") for k in (2, 3, 4)]
    for rows, column, label, color in runs:
        far = [x for x in rows if x[0] >= 4.5]
        ax.plot([x[0] for x in far], [x[column] - x[-1] for x in far], "o-", ms=3, color=color, label=label)
    _, cp = read("data/dimer/bsse.csv")
    far = [x for x in cp if x[0] >= 4.5]
    ax.plot([x[0] for x in far], [x[2] - x[1] for x in far], "k:", label="counterpoise-corrected PBE0 - PBE0")
    ax.axhspan(-0.5, 0.5, color="grey", alpha=0.2, lw=0)
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set(xlabel="O-O distance (A)", ylabel="model - PBE0 (meV)", ylim=(-3, 6),
           title="water dimer tail: 0.5 meV band (issue 22), float64 evaluation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig("docs/figures/dimer_tail_error.png", dpi=110)


if __name__ == "__main__":
    main()
