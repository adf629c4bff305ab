"""docs/figures/interaction_curves.png: the water dimer's and H3O+...H2O's interaction energy, models and PBE0.

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


if __name__ == "__main__":
    main()
