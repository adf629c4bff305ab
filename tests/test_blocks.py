"""Each building block on its own: equivariance of every irreps block, radial basis, cutoff."""

import math

import pytest
import torch
from e3nn import o3

from equiprop.nn.precision import default_dtype
from equiprop.nn import (
    BodyOrderProduct,
    CFConv,
    CosineCutoff,
    GatedNonlinearity,
    GaussianRBF,
    SO3Convolution,
    SO3Interaction,
    VectorReadout,
    hidden_irreps,
)


def tolerance(dtype):
    return 1e-10 if dtype == torch.float64 else 1e-5


def random_edges(n_atoms=7, n_edges=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, n_atoms, (n_edges,), generator=g)
    j = (i + torch.randint(1, n_atoms, (n_edges,), generator=g)) % n_atoms
    return torch.stack([i, j])


def wigner_D(irreps: o3.Irreps, R: torch.Tensor) -> torch.Tensor:
    """``irreps.D_from_matrix(R)`` at full precision (e3nn builds its bases in the default dtype)."""
    with default_dtype(torch.float64):
        return irreps.D_from_matrix(R.double()).to(R.dtype)


def assert_equivariant(make_block, irreps_in, irreps_out, dtype, edge_inputs=False, seed=0):
    """f(D_in(R) x) == D_out(R) f(x) for random x and R; with edges, also rotate edge vectors.

    ``make_block()`` is called with ``dtype`` as the default dtype (see equiprop.nn.precision).
    """
    torch.manual_seed(seed)
    with default_dtype(dtype):
        block = make_block()
    R = o3.rand_matrix(dtype=dtype)
    D_in, D_out = wigner_D(irreps_in, R), wigner_D(irreps_out, R)
    x = irreps_in.randn(7, -1, dtype=dtype)
    if edge_inputs:
        edges, vectors = random_edges(), torch.randn(20, 3, dtype=dtype)
        sh_irreps = block.irreps_sh if hasattr(block, "irreps_sh") else block.conv.irreps_sh
        sh = o3.SphericalHarmonics(sh_irreps, normalize=True, normalization="component")
        d = vectors.norm(dim=1)
        rbf, fcut = GaussianRBF(8, 3.0).to(dtype)(d), torch.ones_like(d)
        out = block(x, sh(vectors), rbf, fcut, edges)
        out_rot = block(x @ D_in.T, sh(vectors @ R.T), rbf, fcut, edges)
    else:
        out, out_rot = block(x), block(x @ D_in.T)
    scale = max(out.abs().max().item(), 1.0)
    assert out.abs().max() > 0  # a block that returns zeros would be trivially equivariant
    assert (out_rot - out @ D_out.T).abs().max().item() <= tolerance(dtype) * scale


@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_so3_convolution(lmax, dtype):
    irreps = hidden_irreps(4, lmax)
    def conv():
        return SO3Convolution(irreps, o3.Irreps.spherical_harmonics(lmax), irreps, n_rbf=8, radial_hidden=16)

    assert_equivariant(conv, irreps, irreps, dtype, edge_inputs=True)


@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_body_order_product(lmax, dtype):
    irreps = hidden_irreps(4, lmax)
    assert_equivariant(lambda: BodyOrderProduct(irreps), irreps, irreps, dtype)


@pytest.mark.parametrize("lmax", [1, 2])
def test_gate_and_linear(lmax, dtype):
    irreps = hidden_irreps(4, lmax)
    assert_equivariant(lambda: GatedNonlinearity(irreps, irreps), irreps, irreps, dtype)
    assert_equivariant(lambda: o3.Linear(irreps, irreps), irreps, irreps, dtype)


@pytest.mark.parametrize("lmax", [1, 2])
def test_interaction_block(lmax, dtype):
    irreps = hidden_irreps(4, lmax)
    def block():
        return SO3Interaction(irreps, o3.Irreps.spherical_harmonics(lmax), n_rbf=8, radial_hidden=16, avg_neighbors=3.0)

    assert_equivariant(block, irreps, irreps, dtype, edge_inputs=True)


def test_vector_readout_is_cartesian(dtype):
    irreps = hidden_irreps(4, 2)
    assert_equivariant(lambda: VectorReadout(irreps, hidden=4), irreps, o3.Irreps("1x1o"), dtype)
    R = o3.rand_matrix(dtype=torch.float64)  # e3nn's l=1 basis is plain (x, y, z): D(R) == R
    assert torch.allclose(o3.Irreps("1x1o").D_from_matrix(R), R, atol=1e-12)


def test_cfconv_permutation_and_locality():
    torch.manual_seed(0)
    conv = CFConv(features=5, n_rbf=8).double()
    x, edges = torch.randn(7, 5, dtype=torch.float64), random_edges()
    d = torch.rand(20, dtype=torch.float64) * 3
    rbf, fcut = GaussianRBF(8, 3.0).double()(d), CosineCutoff(3.0)(d)
    out = conv(x, rbf, fcut, edges)
    perm = torch.randperm(7)
    inverse = torch.argsort(perm)
    out_perm = conv(x[perm], rbf, fcut, inverse[edges])
    assert torch.allclose(out_perm, out[perm], atol=1e-12)
    receivers = set(edges[0].tolist())
    isolated = [a for a in range(7) if a not in receivers]
    assert all(out[a].abs().max() == 0 for a in isolated)


def test_radial_basis_and_cutoff():
    rbf = GaussianRBF(n_rbf=5, cutoff=4.0, start=1.0).double()
    values = rbf(torch.tensor([1.0, 4.0], dtype=torch.float64))
    assert values.shape == (2, 5)
    assert values[0, 0] == 1.0 and values[1, -1] == 1.0  # centres at start and cutoff
    cutoff = CosineCutoff(4.0)
    d = torch.tensor([0.0, 2.0, 4.0 - 1e-6, 4.0, 5.0], dtype=torch.float64, requires_grad=True)
    value = cutoff(d)
    assert value[0] == 1.0 and abs(value[1] - 0.5) < 1e-15 and value[2] < 1e-12 and value[3] == 0 and value[4] == 0
    (slope,) = torch.autograd.grad(value.sum(), d)
    assert abs(slope[1] + math.pi / 8) < 1e-12 and abs(slope[2]) < 1e-6  # zero slope at the cutoff


def test_blocks_reject_bad_wiring():
    with pytest.raises(ValueError, match="lmax"):
        hidden_irreps(8, 0)
    with pytest.raises(ValueError, match="BodyOrderProduct"):
        BodyOrderProduct("4x0e + 2x1o")
    with pytest.raises(ValueError, match="unreachable"):
        SO3Convolution("4x0e", "1x0e", "4x0e + 4x1o", n_rbf=4)
    with pytest.raises(ValueError, match="GatedNonlinearity"):
        GatedNonlinearity("4x0e", "4x0o")
