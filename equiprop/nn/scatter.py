"""Gathers and sums over groups given by an index (atoms to edges, edges to atoms, atoms to structures).

Both have two formulations with the same values and gradients. Eagerly,
``index_select``/``index_add`` (contiguous rows copied and added). Under
``torch.compile`` on a CPU, ``gather``/``scatter_add`` with the index expanded
over the trailing dimensions: Inductor turns ``index_add`` (and so the backward
of ``index_select``) into one atomic compare-and-swap add per float, which kept
the compiled SO3Net (lmax 2) step as slow as the eager one (231 -> 252 structures/s);
``scatter_add`` it hands to ATen's kernel instead
(``torch._inductor.config.cpp.fallback_scatter_reduce_sum``), and ``gather``'s
backward is ``scatter_add`` (docs/performance.md, step 21).
"""

import torch


def compiling_for_cpu(x: torch.Tensor) -> bool:
    """Whether ``torch.compile`` is tracing code that will run on a CPU (where Inductor writes its own C++ loops)."""
    return torch.compiler.is_compiling() and x.device.type == "cpu"


def _expanded(index: torch.Tensor, like: torch.Tensor, dim: int) -> torch.Tensor:
    """``index [k]`` as a view of ``like``'s shape with ``k`` along ``dim`` (no copy)."""
    shape = [1] * like.dim()
    shape[dim] = index.shape[0]
    size = list(like.shape)
    size[dim] = index.shape[0]
    return index.view(shape).expand(size)


def gather_rows(x: torch.Tensor, index: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``x.index_select(dim, index)``: ``x [..., n, ...]``, ``index [k]`` -> ``[..., k, ...]``."""
    if compiling_for_cpu(x):
        return x.gather(dim, _expanded(index, x, dim))
    return x.index_select(dim, index)


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum rows of ``src`` ``[n, ...]`` into ``[dim_size, ...]`` by ``index`` ``[n]``."""
    out = src.new_zeros((dim_size,) + src.shape[1:])
    if compiling_for_cpu(src):
        return out.scatter_add(0, _expanded(index, src, 0), src)
    return out.index_add(0, index, src)
