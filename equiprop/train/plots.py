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
}


def parity_plots(parity: dict, metrics: dict, out_dir, prefix: str = "parity") -> list[Path]:
    """One PNG per target, ``{prefix}_{target}.png`` in ``out_dir``; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for prop, (ref, pred) in parity.items():
        fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=120)
        ax.scatter(ref, pred, s=6, alpha=0.6, edgecolors="none")
        low, high = float(np.min([ref.min(), pred.min()])), float(np.max([ref.max(), pred.max()]))
        pad = 0.05 * (high - low or 1.0)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="black", lw=0.8)
        ax.set(xlim=(low - pad, high + pad), ylim=(low - pad, high + pad), aspect="equal")
        ax.set_xlabel(f"DFT {AXIS_LABELS[prop]}")
        ax.set_ylabel(f"predicted {AXIS_LABELS[prop]}")
        m = metrics[prop.value]
        ax.set_title(f"{prop.value}: MAE {m['mae']:.4g}, RMSE {m['rmse']:.4g} {m['unit']}", fontsize=9)
        fig.tight_layout()
        path = Path(out_dir) / f"{prefix}_{prop.value}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
