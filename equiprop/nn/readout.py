"""Per-atom readouts and the physics that turns them into structure properties."""

import torch
from e3nn import o3
from torch import nn

from equiprop.nn.gate import GatedNonlinearity
from equiprop.nn.mlp import mlp
from equiprop.nn.scatter import scatter_sum


class ScalarReadout(nn.Module):
    """Invariant features ``[n_atoms, features]`` to one scalar per atom ``[n_atoms]``.

    The last layer starts at zero, so an untrained head predicts exactly the
    normalisation baseline (e.g. the element reference energies) instead of
    random values whose huge initial loss would stall Adam for many steps.
    """

    def __init__(self, features: int, activation: type[nn.Module] = nn.SiLU):
        super().__init__()
        self.net = mlp([features, max(features // 2, 1), 1], activation)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)[:, 0]


class VectorReadout(nn.Module):
    """Equivariant features ``[n_atoms, irreps_in.dim]`` to one l=1 vector per atom ``[n_atoms, 3]``.

    A gated layer (``hidden x 0e + hidden x 1o``) then a linear map to ``1x1o``;
    e3nn's l=1 basis is Cartesian (x, y, z).
    """

    def __init__(self, irreps_in, hidden: int):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        self.hidden = GatedNonlinearity(self.irreps_in, f"{hidden}x0e + {hidden}x1o")
        self.out = o3.Linear(self.hidden.irreps_out, "1x1o")
        self.irreps_out = self.out.irreps_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


def constrain_charges(
    charges: torch.Tensor, structure: torch.Tensor, total_charge: torch.Tensor, n_atoms: torch.Tensor
) -> torch.Tensor:
    """Shift each structure's charges evenly so they sum exactly to its total charge.

    Shapes: ``charges [n_atoms]``, ``structure [n_atoms]``, ``total_charge
    [n_structures]``, ``n_atoms [n_structures]`` -> ``[n_atoms]``.
    """
    excess = total_charge - scatter_sum(charges, structure, n_atoms.shape[0])  # [n_structures]
    return charges + (excess / n_atoms.to(charges.dtype))[structure]


def centered_positions(positions: torch.Tensor, structure: torch.Tensor, n_atoms: torch.Tensor) -> torch.Tensor:
    """Positions relative to each structure's geometric centre, ``[n_atoms, 3]``."""
    center = scatter_sum(positions, structure, n_atoms.shape[0]) / n_atoms.to(positions.dtype)[:, None]
    return positions - center[structure]
