"""Sums over groups given by an index (edges to atoms, atoms to structures)."""

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum rows of ``src`` ``[n, ...]`` into ``[dim_size, ...]`` by ``index`` ``[n]``."""
    out = src.new_zeros((dim_size,) + src.shape[1:])
    return out.index_add(0, index, src)
