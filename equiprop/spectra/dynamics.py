"""Spectra from molecular dynamics: IR from the dipole's time derivative, the vibrational density of states from velocities.

Both are Fourier transforms of windowed autocorrelation functions, scaled so
that they compare with the harmonic analysis (:mod:`equiprop.spectra.harmonic`):

- ``ir(nu)``, in (D/Angstrom)^2/amu per cm^-1, is ``(1 / kT) FT <mu'(0) . mu'(t)>``
  over positive wavenumbers; it integrates to ``<|mu'|^2> / kT``, which for a
  harmonic system is the sum of the modes' IR intensities (ASE's unit) at any
  temperature. So an MD band has the area of the harmonic stick it broadens.
  The derivative is exact: ``omega^2`` times the spectrum of the dipole itself
  (its mean removed), where central differences would lose ``sinc^2(omega dt)``.
  Classical nuclei with the dipole-derivative correlation are the *harmonic*
  quantum correction (``qcf="harmonic"``, the default, a factor 1);
  ``"standard"`` multiplies by ``tanh(x / 2) / (x / 2)`` and ``"schofield"`` by
  ``exp(x / 2) (1 - exp(-x)) / x``, with ``x = h c nu / kT``.
- ``raman(nu)``, in Angstrom^4/amu per cm^-1, from polarizabilities ``alpha(t)``:
  isotropic ``45 FT <a'(0) a'(t)> / kT`` (``a = tr(alpha) / 3``) and anisotropic
  ``7 * 3/2 FT <b'(0) : b'(t)> / kT`` (``b`` the traceless part), so that band areas are
  the harmonic Raman activities ``45 a'^2 + 7 g'^2`` (Gaussian's and ASE's convention).
- ``vdos(nu)``, in states per cm^-1, is ``(1 / kT) FT sum_i m_i <v_i(0) . v_i(t)>``;
  it integrates to the number of degrees of freedom (equipartition).

The correlation is taken over lags up to ``max_lag`` (default: half the run) with
a Hann window on the lags, so the resolution is about ``1 / (c * max_lag)``.
Times are in fs, dipoles in e*Angstrom, velocities in Angstrom/fs, masses in amu.
"""

from dataclasses import dataclass

import numpy as np
from ase import units

#: cm^-1 per fs^-1 (wavenumber of frequency 1/fs): 1e15 / c[cm/s].
CM_PER_INVERSE_FS = 1e15 / (units._c * 100.0)
#: amu * (Angstrom/fs)^2 in eV.
AMU_A2_PER_FS2_IN_EV = units._amu * 1e10 / units._e
QCFS = ("harmonic", "standard", "schofield")


@dataclass
class Spectrum:
    wavenumbers: np.ndarray  # [n], cm^-1
    values: np.ndarray  # [n], per cm^-1 (unit of the quantity: see the module)
    resolution: float  # cm^-1, 1 / (c * max_lag)


def autocorrelation(signal: np.ndarray, max_lag: int) -> np.ndarray:
    """``c[k] = mean_t sum_d x[t, d] x[t + k, d]`` for ``k < max_lag`` (unbiased: each lag over its own overlap).

    ``signal [n_times, n_components]``; by FFT with zero padding (no wrap-around).
    """
    n = signal.shape[0]
    size = 1 << int(np.ceil(np.log2(2 * n)))
    transform = np.fft.rfft(signal, n=size, axis=0)
    correlation = np.fft.irfft((transform * transform.conj()).real.sum(axis=1), n=size)[:max_lag]
    return correlation / (n - np.arange(max_lag))


def spectral_density(correlation: np.ndarray, dt_fs: float, derivative: bool = False) -> Spectrum:
    """One-sided cosine transform of a Hann-windowed autocorrelation, per cm^-1: it integrates to ``correlation[0]``.

    ``derivative``: the spectrum of the signal's time derivative instead (times ``omega^2``, in fs^-2):
    exact, where finite differences of the signal lose ``sinc^2(omega dt)`` (3% at 3400 cm^-1 and 0.5 fs).
    """
    lags = len(correlation)
    window = np.hanning(2 * lags - 1)[lags - 1:]  # 1 at lag 0, 0 at the last lag
    symmetric = np.concatenate([correlation * window, (correlation * window)[:0:-1]])  # [2 * lags - 1], even in time
    density = np.fft.rfft(symmetric).real * dt_fs  # integral over all t of c(t) e^{-i w t}, fs
    frequencies = np.fft.rfftfreq(len(symmetric), d=dt_fs)  # fs^-1
    wavenumbers = frequencies * CM_PER_INVERSE_FS
    # one-sided: S(nu) = 2 * C(w) / (2 pi) * (d w / d nu) = 2 * C(f) * (df / d nu)
    values = 2.0 * density / CM_PER_INVERSE_FS
    if derivative:
        values = values * (2 * np.pi * frequencies) ** 2
    return Spectrum(wavenumbers, values, CM_PER_INVERSE_FS / (lags * dt_fs))


def quantum_correction(wavenumbers: np.ndarray, temperature: float, qcf: str) -> np.ndarray:
    """The factor that turns the classical dipole-derivative spectrum into the ``qcf``-corrected one."""
    if qcf not in QCFS:
        raise ValueError(f"unknown quantum correction {qcf!r}; known: {', '.join(QCFS)}")
    if qcf == "harmonic":
        return np.ones_like(wavenumbers)
    x = np.maximum(wavenumbers * units.invcm / (units.kB * temperature), 1e-12)  # h c nu / kT
    if qcf == "standard":
        return np.tanh(x / 2) / (x / 2)
    return np.exp(x / 2) * -np.expm1(-x) / x


def ir_spectrum(dipoles: np.ndarray, dt_fs: float, temperature: float, max_lag: int | None = None,
                qcf: str = "harmonic") -> Spectrum:
    """IR absorption from dipoles ``[n_times, 3]`` (e*Angstrom) every ``dt_fs``, at ``temperature`` K (module doc)."""
    dipoles = np.asarray(dipoles, dtype=np.float64)
    max_lag = max_lag or len(dipoles) // 2
    kt = units.kB * temperature  # eV
    correlation = autocorrelation(dipoles - dipoles.mean(axis=0), max_lag)  # (e*A)^2
    spectrum = spectral_density(correlation * AMU_A2_PER_FS2_IN_EV / kt / units.Debye ** 2, dt_fs, derivative=True)
    spectrum.values = spectrum.values * quantum_correction(spectrum.wavenumbers, temperature, qcf)
    return spectrum


def raman_spectra(polarizabilities: np.ndarray, dt_fs: float, temperature: float, max_lag: int | None = None,
                  qcf: str = "harmonic") -> tuple[Spectrum, Spectrum]:
    """(isotropic, anisotropic) Raman activity spectra from ``polarizabilities [n_times, 3, 3]`` (Angstrom^3)."""
    alpha = np.asarray(polarizabilities, dtype=np.float64)
    isotropic = np.trace(alpha, axis1=1, axis2=2) / 3  # [n_times]
    traceless = (alpha - isotropic[:, None, None] * np.eye(3)).reshape(len(alpha), 9)
    max_lag = max_lag or len(alpha) // 2
    scale = AMU_A2_PER_FS2_IN_EV / (units.kB * temperature)  # A^6 / fs^2 / eV -> A^4 / amu
    spectra = []
    for signal, factor in ((isotropic[:, None], 45.0), (traceless, 7.0 * 1.5)):
        correlation = autocorrelation(signal - signal.mean(axis=0), max_lag) * scale * factor
        spectrum = spectral_density(correlation, dt_fs, derivative=True)
        spectrum.values = spectrum.values * quantum_correction(spectrum.wavenumbers, temperature, qcf)
        spectra.append(spectrum)
    return spectra[0], spectra[1]


def vibrational_dos(velocities: np.ndarray, masses: np.ndarray, dt_fs: float, temperature: float,
                    max_lag: int | None = None, positions: bool = False) -> Spectrum:
    """Density of states from velocities ``[n_times, n_atoms, 3]`` (Angstrom/fs), masses ``[n_atoms]`` (amu).

    ``positions``: the array holds positions (Angstrom) instead, and the velocities' spectrum is taken
    as ``omega^2`` times theirs (for trajectories without momenta).
    """
    signal = np.asarray(velocities, dtype=np.float64)
    if positions:
        signal = signal - signal.mean(axis=0)
    weighted = signal * np.sqrt(masses)[None, :, None]
    max_lag = max_lag or len(signal) // 2
    kt = units.kB * temperature
    correlation = autocorrelation(weighted.reshape(len(weighted), -1), max_lag) * AMU_A2_PER_FS2_IN_EV / kt
    return spectral_density(correlation, dt_fs, derivative=positions)
