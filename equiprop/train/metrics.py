"""MAE and RMSE per target, accumulated as sums so they reduce exactly across batches or ranks."""

import math

import torch
from ase.units import Debye

from equiprop.keys import Property

#: Reported unit of each target and the factor from equiprop's units (e, e*A, eV/atom, eV/A).
UNITS = {
    Property.CHARGES: ("e", 1.0),
    Property.DIPOLE: ("e*A", 1.0),
    Property.DIPOLE_MAGNITUDE: ("e*A", 1.0),
    Property.ENERGY: ("meV/atom", 1000.0),
    Property.FORCES: ("meV/A", 1000.0),
    Property.STRESS: ("meV/A^3", 1000.0),
    Property.QUADRUPOLE: ("e*A^2", 1.0),
    Property.POLARIZABILITY: ("A^3", 1.0),
}
#: e*Angstrom -> Debye
E_ANGSTROM_IN_DEBYE = 1.0 / Debye


class ErrorSums:
    """Sums of absolute and squared errors and counts, per target (components counted singly)."""

    def __init__(self, targets):
        self.targets = list(targets)
        self.sums = torch.zeros(len(self.targets), 3, dtype=torch.float64)  # [n_targets, (abs, sq, count)]

    def add(self, errors: dict[Property, torch.Tensor]) -> None:
        """Accumulate on the errors' device (no host-device sync per batch)."""
        rows = error_rows(errors, self.targets)
        self.sums = self.sums.to(rows.device) + rows

    def mse(self) -> dict[Property, float]:
        """Mean squared error per target in equiprop's units (energy per atom)."""
        sums = self.sums.cpu()
        return {p: float(sums[row, 1] / sums[row, 2]) for row, p in enumerate(self.targets)}

    def result(self) -> dict[str, dict[str, float]]:
        """``{target: {"mae": ..., "rmse": ..., "unit": ...}}`` in the reported units."""
        out = {}
        for row, prop in enumerate(self.targets):
            total_abs, total_sq, count = self.sums[row].cpu().tolist()
            unit, factor = UNITS[prop]
            mae = factor * total_abs / count if count else math.nan
            rmse = factor * math.sqrt(total_sq / count) if count else math.nan
            out[prop.value] = {"mae": mae, "rmse": rmse, "unit": unit}
            if prop in (Property.DIPOLE, Property.DIPOLE_MAGNITUDE):
                out[prop.value].update(mae_debye=mae * E_ANGSTROM_IN_DEBYE, rmse_debye=rmse * E_ANGSTROM_IN_DEBYE)
        return out


def error_rows(errors: dict[Property, torch.Tensor], targets, counts: torch.Tensor | None = None) -> torch.Tensor:
    """``[n_targets, 3]`` float64: sum of absolute errors, of squared errors, and the count, per target.

    ``counts [n_targets]`` gives the counts where ``errors`` hold zero padding
    (``equiprop/data/padding.py``); by default every entry counts.
    """
    rows = []
    for k, prop in enumerate(targets):
        e = errors[prop].detach().to(torch.float64)
        count = counts[k].to(torch.float64) if counts is not None else e.new_full((), float(e.numel()))
        rows.append(torch.stack([e.abs().sum(), e.pow(2).sum(), count]))
    return torch.stack(rows)
