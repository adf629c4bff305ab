"""Training: normalisation (and, later, the loop, losses, metrics, checkpoints)."""

from equiprop.train.normalization import atomic_energy_scale, element_counts, fit_element_energies

__all__ = ["atomic_energy_scale", "element_counts", "fit_element_energies"]
