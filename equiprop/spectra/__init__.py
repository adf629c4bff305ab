"""Vibrational spectra from a model: harmonic modes and IR intensities (``harmonic.py``)."""
