"""Equivariant features as ``[n, (lmax + 1)^2, channels]`` tensors, and their couplings.

Layout: component ``m`` of degree ``l`` sits at index ``l^2 + l + m`` of the
middle axis (the order of e3nn's spherical harmonics, whose l=1 part is
Cartesian x, y, z); every degree has the same ``channels``, which are the
last, contiguous axis (as in schnetpack's SO3net): the per-edge matmuls then
run over 32 contiguous channels instead of 9 components, 2x faster on CPU
(docs/performance.md, step 6). Parity is natural
(``(-1)^l``), so couplings ``l1 x l2 -> l3`` need ``l1 + l2 + l3`` even: the
network is O(3)-equivariant and its l=1 outputs are true vectors.

Clebsch-Gordan coefficients come from e3nn (``o3.wigner_3j``), computed in
float64 and cast to the default dtype, so float64 models are exact.
"""

import math
from dataclasses import dataclass

import torch
from e3nn import o3


def n_components(lmax: int) -> int:
    """``(lmax + 1)^2``: components of all degrees up to lmax."""
    return (lmax + 1) ** 2


def degree_of_component(lmax: int) -> torch.Tensor:
    """Degree l of each of the ``(lmax + 1)^2`` components, ``[M]`` int64."""
    return torch.cat([torch.full((2 * l + 1,), l) for l in range(lmax + 1)])


def check_lmax(lmax: int, minimum: int = 1) -> int:
    if int(lmax) != lmax or lmax < minimum:
        raise ValueError(f"lmax must be an integer >= {minimum}, got {lmax}")
    return int(lmax)


def check_sh_lmax(sh_lmax: int, lmax: int) -> int:
    """Spherical-harmonics degree for features up to ``lmax``: from lmax to 2 lmax (higher ones couple to nothing)."""
    if int(sh_lmax) != sh_lmax or not lmax <= sh_lmax <= 2 * lmax:
        raise ValueError(f"sh_lmax must be an integer from lmax to 2 * lmax ({lmax} to {2 * lmax}), got {sh_lmax}")
    return int(sh_lmax)


@dataclass(frozen=True)
class Path:
    """A coupling ``l1 x l2 -> l3`` with natural parity."""

    l1: int
    l2: int
    l3: int


def coupling_paths(lmax_1: int, lmax_2: int, lmax_out: int) -> list[Path]:
    """All allowed couplings between degrees up to the given maxima (l1 + l2 + l3 even)."""
    return [
        Path(l1, l2, l3)
        for l1 in range(lmax_1 + 1)
        for l2 in range(lmax_2 + 1)
        for l3 in range(abs(l1 - l2), min(l1 + l2, lmax_out) + 1)
        if (l1 + l2 + l3) % 2 == 0
    ]


def normalized_cg(path: Path) -> torch.Tensor:
    """Clebsch-Gordan block ``[2l1+1, 2l2+1, 2l3+1]`` scaled so unit-variance inputs give unit-variance outputs."""
    return o3.wigner_3j(path.l1, path.l2, path.l3, dtype=torch.float64) * math.sqrt(2 * path.l3 + 1)


def path_fan_in(paths: list[Path], lmax_out: int) -> torch.Tensor:
    """How many paths end in each output degree, ``[lmax_out + 1]`` (for normalising their sum)."""
    counts = torch.zeros(lmax_out + 1, dtype=torch.float64)
    for p in paths:
        counts[p.l3] += 1
    return counts


def dense_couplings(paths: list[Path], lmax_1: int, lmax_2: int, lmax_out: int) -> torch.Tensor:
    """All paths as one dense tensor ``[n_paths, M1, M2, M_out]`` (zeros outside each block), float64."""
    fan_in = path_fan_in(paths, lmax_out)
    out = torch.zeros(len(paths), n_components(lmax_1), n_components(lmax_2), n_components(lmax_out), dtype=torch.float64)
    for k, p in enumerate(paths):
        out[k, p.l1**2 : (p.l1 + 1) ** 2, p.l2**2 : (p.l2 + 1) ** 2, p.l3**2 : (p.l3 + 1) ** 2] = (
            normalized_cg(p) / math.sqrt(fan_in[p.l3])
        )
    return out


@dataclass(frozen=True)
class SparseCouplings:
    """The non-zero entries of :func:`dense_couplings`, ``[K]`` each (K = 83 at lmax 2, of 8,019 dense).

    Entry k couples input component ``m1[k]`` with ``m2[k]`` into output
    component ``m3[k]`` through path ``path[k]`` with coefficient ``value[k]``.
    """

    path: torch.Tensor
    m1: torch.Tensor
    m2: torch.Tensor
    m3: torch.Tensor
    value: torch.Tensor  # float64


def sparse_couplings(paths: list[Path], lmax_1: int, lmax_2: int, lmax_out: int) -> SparseCouplings:
    dense = dense_couplings(paths, lmax_1, lmax_2, lmax_out)
    nonzero = dense.abs() > 1e-12  # wigner_3j's exact zeros come out as ~1e-17
    return SparseCouplings(*nonzero.nonzero(as_tuple=True), value=dense[nonzero])
