"""Small multilayer perceptrons and SchNet's activation."""

import math

import torch
from torch import nn


class ShiftedSoftplus(nn.Module):
    """``softplus(x) - log 2``: smooth, zero at zero (SchNet's activation)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


def mlp(sizes: list[int], activation: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Linear layers of ``sizes`` with ``activation`` between them (none after the last).

    Weights start Xavier-uniform and biases at zero (as in schnetpack): PyTorch's
    default init is about 2x smaller per layer, which leaves an untrained network
    almost blind to atom positions (forces then take many epochs to start learning).
    """
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if k > 0:
            layers.append(activation())
        linear = nn.Linear(n_in, n_out)
        nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(linear.bias)
        layers.append(linear)
    return nn.Sequential(*layers)
