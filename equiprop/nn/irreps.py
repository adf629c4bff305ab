"""Irreps helpers shared by the equivariant blocks."""

from e3nn import o3


def hidden_irreps(features: int, lmax: int) -> o3.Irreps:
    """``features`` channels of each l <= lmax with natural parity: ``Fx0e + Fx1o + Fx2e ...``."""
    if lmax < 1:
        raise ValueError(f"lmax must be at least 1, got {lmax}")
    return o3.Irreps([(features, (l, (-1) ** l)) for l in range(lmax + 1)])


def check_uniform(irreps: o3.Irreps, block: str) -> int:
    """The common multiplicity of ``irreps``; ValueError naming ``block`` if they differ."""
    muls = {mul for mul, _ in irreps}
    if len(muls) != 1:
        raise ValueError(f"{block}: all irreps need the same multiplicity, got {irreps}")
    return muls.pop()


def coupling_paths(irreps_1: o3.Irreps, irreps_2: o3.Irreps, irreps_out: o3.Irreps) -> list[tuple[int, int, int]]:
    """All (i1, i2, i_out) with ``irreps_out[i_out]`` in ``irreps_1[i1] x irreps_2[i2]``."""
    paths = []
    for i1, (_, ir1) in enumerate(irreps_1):
        for i2, (_, ir2) in enumerate(irreps_2):
            for i_out, (_, ir_out) in enumerate(irreps_out):
                if ir_out in ir1 * ir2:
                    paths.append((i1, i2, i_out))
    return paths
