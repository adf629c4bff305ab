"""Spectrum figures: sticks and their broadened envelope, optionally above a reference (PNG)."""

import numpy as np

from equiprop.spectra.harmonic import broadened


def plot_harmonic(path, frequencies, intensities, width: float = 20.0, label: str = "model",
                  reference: tuple[np.ndarray, np.ndarray] | None = None, reference_label: str = "reference") -> None:
    """IR sticks (cm^-1, (D/A)^2/amu) broadened by Lorentzians of FWHM ``width``; a reference is drawn mirrored below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = max(float(np.max(frequencies, initial=0.0)), float(np.max(reference[0], initial=0.0)) if reference else 0.0)
    grid = np.linspace(0.0, 1.1 * top + 200.0, 4000)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    curves = [(frequencies, intensities, 1.0, label, "C0")]
    if reference is not None:
        curves.append((reference[0], reference[1], -1.0, reference_label, "C3"))
    for freq, inten, sign, name, color in curves:
        ax.plot(grid, sign * broadened(freq, inten, grid, width) * np.pi * width / 2, color=color, label=name)
        ax.vlines(freq, 0.0, sign * inten, color=color, alpha=0.5, linewidth=1)
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xlabel("wavenumber (cm$^{-1}$)")
    ax.set_ylabel("IR intensity ((D/Å)$^2$/amu)")
    ax.set_title(f"harmonic IR: sticks, and Lorentzians of FWHM {width:g} cm$^{{-1}}$ peaking at their stick", fontsize=9)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def plot_dynamics(path, ir, vdos, sticks: tuple[np.ndarray, np.ndarray] | None = None, title: str = "",
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
        harmonic.vlines(sticks[0], 0.0, sticks[1], color="C3", alpha=0.7, label="harmonic")
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
