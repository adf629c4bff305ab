"""Parity plots: predicted against reference, with the diagonal."""

from pathlib import Path

import numpy as np

from equiprop.keys import Property

AXIS_LABELS = {
    Property.CHARGES: "charge (e)",
    Property.DIPOLE: "dipole component (e*A)",
    Property.DIPOLE_MAGNITUDE: "|dipole| (e*A)",
    Property.ENERGY: "E/atom - element refs (eV)",
    Property.FORCES: "force component (eV/A)",
    Property.STRESS: "stress component (eV/A^3)",
    Property.QUADRUPOLE: "quadrupole component (e*A^2)",
    Property.POLARIZABILITY: "polarizability component (A^3)",
}


def parity_plots(parity: dict, metrics: dict, out_dir, prefix: str = "parity") -> list[Path]:
    """One PNG per target, ``{prefix}_{target}.png``, and all targets side by side, ``{prefix}.png``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for prop, (ref, pred) in parity.items():
        fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=120)
        _draw(ax, prop, ref, pred, metrics[prop.value])
        paths.append(_save(fig, Path(out_dir) / f"{prefix}_{prop.value}.png"))
    if len(parity) > 1:
        fig, axes = plt.subplots(1, len(parity), figsize=(3.4 * len(parity), 3.6), dpi=120)
        for ax, (prop, (ref, pred)) in zip(axes, parity.items()):
            _draw(ax, prop, ref, pred, metrics[prop.value])
        paths.append(_save(fig, Path(out_dir) / f"{prefix}.png"))
    return paths


def _draw(ax, prop: Property, ref: np.ndarray, pred: np.ndarray, m: dict) -> None:
    ax.scatter(ref, pred, s=6, alpha=0.6, edgecolors="none")
    low, high = float(np.min([ref.min(), pred.min()])), float(np.max([ref.max(), pred.max()]))
    pad = 0.05 * (high - low or 1.0)
    ax.plot([low - pad, high + pad], [low - pad, high + pad], color="black", lw=0.8)
    ax.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal")
    ax.set_xlabel(f"DFT {AXIS_LABELS[prop]}")
    ax.set_ylabel(f"predicted {AXIS_LABELS[prop]}")
    ax.set_title(f"{prop.value}: MAE {m['mae']:.4g}, RMSE {m['rmse']:.4g} {m['unit']}", fontsize=8)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
