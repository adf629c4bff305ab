"""Spectrum figures: sticks and their broadened envelope, optionally above a reference (PNG)."""

from dataclasses import dataclass

import numpy as np

from equiprop.spectra.harmonic import broadened


@dataclass
class Sticks:
    """Harmonic modes to draw: frequencies [n] (cm^-1), IR intensities [n] ((D/A)^2/amu), Raman activities [n] (A^4/amu)."""

    frequencies: np.ndarray
    intensities: np.ndarray
    raman: np.ndarray | None = None


def plot_harmonic(path, model: Sticks, width: float = 20.0, label: str = "model",
                  reference: Sticks | None = None, reference_label: str = "reference") -> None:
    """IR sticks broadened by Lorentzians of FWHM ``width`` (cm^-1), a reference mirrored below; with the
    model's Raman activities a second panel draws those (and the reference's, if it has them) alike."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(float(np.max(model.frequencies, initial=0.0)),
              float(np.max(reference.frequencies, initial=0.0)) if reference else 0.0)
    grid = np.linspace(0.0, 1.1 * top + 200.0, 4000)
    panels = [("intensities", "IR intensity ((D/Å)$^2$/amu)")]
    if model.raman is not None:
        panels.append(("raman", "Raman activity (Å$^4$/amu)"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 3.5 * len(panels)), sharex=True, squeeze=False)
    for ax, (field, ylabel) in zip(axes[:, 0], panels):
        curves = [(model, 1.0, label, "C0"), (reference, -1.0, reference_label, "C3")]
        for sticks, sign, name, color in curves:
            if sticks is None or getattr(sticks, field) is None:
                continue
            heights = np.nan_to_num(getattr(sticks, field))
            ax.plot(grid, sign * broadened(sticks.frequencies, heights, grid, width) * np.pi * width / 2,
                    color=color, label=name)
            ax.vlines(sticks.frequencies, 0.0, sign * heights, color=color, alpha=0.5, linewidth=1)
        ax.axhline(0.0, color="black", linewidth=0.5)
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False)
    axes[-1, 0].set_xlabel("wavenumber (cm$^{-1}$)")
    axes[0, 0].set_title(f"harmonic: sticks, and Lorentzians of FWHM {width:g} cm$^{{-1}}$ peaking at their stick",
                         fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def plot_dynamics(path, ir, vdos, sticks: Sticks | None = None, title: str = "",
                  raman=None) -> None:
    """Panels: the MD IR spectrum (with harmonic ``sticks`` on a second axis), the (isotropic, anisotropic)
    ``raman`` spectra if given, and the density of states."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = 4200.0
    fig, axes = plt.subplots(3 if raman else 2, 1, figsize=(7, 7 if raman else 5), sharex=True)
    upper, lower = axes[0], axes[-1]
    if raman:
        for spectrum, name, color in zip(raman, ("isotropic", "anisotropic"), ("C1", "C4")):
            keep = spectrum.wavenumbers <= top
            axes[1].plot(spectrum.wavenumbers[keep], spectrum.values[keep], color=color, label=name)
        axes[1].set_ylabel("Raman (Å$^4$/amu per cm$^{-1}$)")
        axes[1].legend(frameon=False)
    keep = ir.wavenumbers <= top
    upper.plot(ir.wavenumbers[keep], ir.values[keep], color="C0", label="MD")
    upper.set_ylabel("IR ((D/Å)$^2$/amu per cm$^{-1}$)")
    if sticks is not None:
        harmonic = upper.twinx()
        harmonic.vlines(sticks.frequencies, 0.0, sticks.intensities, color="C3", alpha=0.7, label="harmonic")
        harmonic.set_ylabel("harmonic ((D/Å)$^2$/amu)", color="C3")
        harmonic.set_ylim(bottom=0.0)
    keep = vdos.wavenumbers <= top
    lower.plot(vdos.wavenumbers[keep], vdos.values[keep], color="C2")
    lower.set_ylabel("density of states (per cm$^{-1}$)")
    lower.set_xlabel("wavenumber (cm$^{-1}$)")
    lower.set_xlim(0.0, top)
    upper.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
