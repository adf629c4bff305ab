"""Each building block on its own: equivariance of every SO(3) block, radial basis, cutoff."""

import math

import pytest
import torch
from e3nn import o3

from equiprop.nn import (
    BodyOrderProduct,
    CFConv,
    CosineCutoff,
    GatedNonlinearity,
    GaussianRBF,
    SO3Convolution,
    SO3Interaction,
    SO3Linear,
    VectorReadout,
    coupling_paths,
    n_components,
)
from equiprop.nn.irreps import check_lmax, normalized_cg, path_fan_in
from equiprop.nn.precision import default_dtype

N_ATOMS, N_EDGES, F = 7, 20, 4


def tolerance(dtype):
    return 1e-10 if dtype == torch.float64 else 1e-5


def random_edges(seed=0):
    g = torch.Generator().manual_seed(seed)
    i = torch.randint(0, N_ATOMS, (N_EDGES,), generator=g)
    j = (i + torch.randint(1, N_ATOMS, (N_EDGES,), generator=g)) % N_ATOMS
    return torch.stack([i, j])


def wigner_D(lmax: int, R: torch.Tensor) -> torch.Tensor:
    """Rotation of the ``(lmax + 1)^2`` components, ``[M, M]``, at full precision.

    Fitted in float64 from ``Y(R v) = D Y(v)`` on random directions (exact up
    to rounding): e3nn's ``D_from_matrix``/``D_from_angles`` are off by up to
    1e-10 for some rotations, which would show up as a fake float64
    equivariance error.
    """
    v = torch.randn(64, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y, y_rot = spherical_harmonics(lmax, v), spherical_harmonics(lmax, v @ R.double().T)  # [64, M]
    return torch.linalg.lstsq(y, y_rot).solution.T.to(R.dtype)


def spherical_harmonics(lmax, vectors):
    return o3.spherical_harmonics(list(range(lmax + 1)), vectors, normalize=True, normalization="component")


def assert_equivariant(make_block, lmax_in, lmax_out, dtype, edge_inputs=False, vector_out=False, seed=0, sh_lmax=None):
    """f(D x) == D f(x) for features ``[n, M, F]`` and random rotations; edges rotate too.

    ``make_block()`` runs with ``dtype`` as the default dtype, as models are built.
    """
    torch.manual_seed(seed)
    with default_dtype(dtype):
        block = make_block()
    R = o3.rand_matrix(dtype=torch.float64)
    D_in, D_out = wigner_D(lmax_in, R).to(dtype), (R if vector_out else wigner_D(lmax_out, R)).to(dtype)
    R = R.to(dtype)
    x = torch.randn(N_ATOMS, n_components(lmax_in), F, dtype=dtype)
    if edge_inputs:
        edges, vectors = random_edges(), torch.randn(N_EDGES, 3, dtype=dtype)
        d = vectors.norm(dim=1)
        rbf, fcut = GaussianRBF(8, 3.0).to(dtype)(d), torch.ones_like(d)
        sh_lmax = lmax_in if sh_lmax is None else sh_lmax
        out = block(x, spherical_harmonics(sh_lmax, vectors), rbf, fcut, edges)
        out_rot = block(D_in @ x, spherical_harmonics(sh_lmax, vectors @ R.T), rbf, fcut, edges)
    else:
        out, out_rot = block(x), block(D_in @ x)
    expected = out @ D_out.T if vector_out else D_out @ out  # [n, 3] vectors or [n, M, F] features
    scale = max(out.abs().max().item(), 1.0)
    assert out.abs().max() > 0  # a block that returns zeros would be trivially equivariant
    assert (out_rot - expected).abs().max().item() <= tolerance(dtype) * scale


@pytest.mark.parametrize("lmax, sh_lmax", [(1, 1), (2, 2), (3, 3), (1, 2), (2, 4)])
def test_so3_convolution(lmax, sh_lmax, dtype):
    make = lambda: SO3Convolution(lmax, F, n_rbf=8, radial_hidden=16, sh_lmax=sh_lmax)  # noqa: E731
    assert_equivariant(make, lmax, lmax, dtype, edge_inputs=True, sh_lmax=sh_lmax)


@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_body_order_product(lmax, dtype):
    assert_equivariant(lambda: BodyOrderProduct(lmax, F), lmax, lmax, dtype)


@pytest.mark.parametrize("lmax", [1, 2])
def test_gate_and_linear(lmax, dtype):
    assert_equivariant(lambda: GatedNonlinearity(lmax, F), lmax, lmax, dtype)
    assert_equivariant(lambda: SO3Linear(lmax, F, F), lmax, lmax, dtype)


def test_gate_and_linear_compute_their_definitions():
    """Fused forms against the per-degree definitions (checkpoints keep their meaning)."""
    torch.manual_seed(0)
    lmax, n = 2, 5
    x = torch.randn(n, n_components(lmax), F, dtype=torch.float64)
    gate = GatedNonlinearity(lmax, F).double()
    with torch.no_grad():
        gate.gates.bias.normal_()
    gates = torch.sigmoid(gate.gates(x[:, 0])).view(n, lmax, F)
    expected = [torch.nn.functional.silu(x[:, :1])]
    expected += [x[:, l * l : (l + 1) ** 2] * gates[:, l - 1 : l] for l in range(1, lmax + 1)]
    assert torch.allclose(gate(x), torch.cat(expected, dim=1), atol=1e-14)
    linear = SO3Linear(lmax, F, 3).double()
    with torch.no_grad():
        linear.bias.normal_()
    expected = [x[:, l * l : (l + 1) ** 2] @ linear.weight[l] for l in range(lmax + 1)]
    expected[0] = expected[0] + linear.bias  # the bias on the scalars only
    assert torch.allclose(linear(x), torch.cat(expected, dim=1), atol=1e-14)


@pytest.mark.parametrize("lmax", [1, 2])
def test_interaction_block(lmax, dtype):
    def block():
        return SO3Interaction(lmax, F, n_rbf=8, radial_hidden=16, avg_neighbors=3.0)

    assert_equivariant(block, lmax, lmax, dtype, edge_inputs=True)


def test_vector_readout_is_cartesian(dtype):
    assert_equivariant(lambda: VectorReadout(F, hidden=4), 2, 1, dtype, vector_out=True)


@pytest.mark.parametrize("lmax, sh_lmax", [(1, 1), (2, 2), (1, 2)])
def test_convolution_matches_path_by_path_reference(lmax, sh_lmax):
    """The fused matmuls give the textbook sum over paths of w_p(r) * c_f(r) * CG_p(x_j, Y)."""
    torch.manual_seed(1)
    with default_dtype(torch.float64):
        conv = SO3Convolution(lmax, F, n_rbf=8, radial_hidden=16, avg_neighbors=2.0, sh_lmax=sh_lmax)
    x = torch.randn(N_ATOMS, n_components(lmax), F, dtype=torch.float64)
    edges, vectors = random_edges(), torch.randn(N_EDGES, 3, dtype=torch.float64)
    rbf, fcut = torch.rand(N_EDGES, 8, dtype=torch.float64), torch.rand(N_EDGES, dtype=torch.float64)
    sh = spherical_harmonics(sh_lmax, vectors)
    paths = coupling_paths(lmax, sh_lmax, lmax)
    assert (sh_lmax > lmax) == any(p.l2 > lmax for p in paths)  # e.g. 1 x 2 -> 1: the edge's l = 2 part is used
    weights = conv.radial(rbf * conv.rbf_scale) * fcut[:, None]
    path_weights, channel_weights = weights[:, : len(paths)], weights[:, len(paths) :]  # [E, P], [E, F]
    fan_in = path_fan_in(paths, lmax)
    expected = torch.zeros_like(x)
    for k, p in enumerate(paths):
        xj, y = x[edges[1], p.l1**2 : (p.l1 + 1) ** 2], sh[:, p.l2**2 : (p.l2 + 1) ** 2]
        message = torch.einsum("eaf,eb,abc->ecf", xj, y, normalized_cg(p))
        message = message * (path_weights[:, k, None] * channel_weights)[:, None] / math.sqrt(fan_in[p.l3])
        expected[:, p.l3**2 : (p.l3 + 1) ** 2] += torch.zeros_like(expected[:, : 2 * p.l3 + 1]).index_add(0, edges[0], message)
    assert torch.allclose(conv(x, sh, rbf, fcut, edges), expected / 2.0**0.5, atol=1e-12)  # 1/sqrt(avg_neighbors)


@pytest.mark.parametrize("lmax", [1, 2])
def test_convolution_of_scalars_equals_zero_padded_features(lmax):
    """The first interaction's shortcut (scalars only, no per-edge matmul) is the same map as zero-padded input."""
    torch.manual_seed(2)
    with default_dtype(torch.float64):
        conv = SO3Convolution(lmax, F, n_rbf=8, radial_hidden=16)
    scalars = torch.randn(N_ATOMS, 1, F, dtype=torch.float64)
    padded = torch.cat([scalars, torch.zeros(N_ATOMS, n_components(lmax) - 1, F, dtype=torch.float64)], dim=1)
    edges, vectors = random_edges(), torch.randn(N_EDGES, 3, dtype=torch.float64)
    rbf, fcut = torch.rand(N_EDGES, 8, dtype=torch.float64), torch.rand(N_EDGES, dtype=torch.float64)
    sh = spherical_harmonics(lmax, vectors)
    out = conv(scalars, sh, rbf, fcut, edges)
    assert out.shape == padded.shape and out[:, 1:].abs().max() > 0  # higher l come from the spherical harmonics
    assert torch.allclose(out, conv(padded, sh, rbf, fcut, edges), atol=1e-12)


@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_product_matches_path_by_path_reference(lmax):
    """The sparse product gives sum_p w_pf CG_p(x_f, (Wx)_f), path by path with e3nn's Clebsch-Gordan blocks."""
    torch.manual_seed(3)
    with default_dtype(torch.float64):
        product = BodyOrderProduct(lmax, F)
    x = torch.randn(N_ATOMS, n_components(lmax), F, dtype=torch.float64)
    y = product.mix(x)
    paths = coupling_paths(lmax, lmax, lmax)
    fan_in = path_fan_in(paths, lmax)
    expected = torch.zeros_like(x)
    for k, p in enumerate(paths):
        a, b = x[:, p.l1**2 : (p.l1 + 1) ** 2], y[:, p.l2**2 : (p.l2 + 1) ** 2]
        term = torch.einsum("naf,nbf,abc->ncf", a, b, normalized_cg(p)) * product.weight[k] / math.sqrt(fan_in[p.l3])
        expected[:, p.l3**2 : (p.l3 + 1) ** 2] += term
    assert torch.allclose(product(x), expected, atol=1e-12)


def test_paths_have_natural_parity():
    paths = {(p.l1, p.l2, p.l3) for p in coupling_paths(2, 2, 2)}
    assert (1, 1, 1) not in paths and (1, 1, 2) in paths and (2, 1, 2) not in paths and len(paths) == 11


def test_cfconv_permutation_and_locality():
    torch.manual_seed(0)
    conv = CFConv(features=5, n_rbf=8).double()
    x, edges = torch.randn(N_ATOMS, 5, dtype=torch.float64), random_edges()
    d = torch.rand(N_EDGES, dtype=torch.float64) * 3
    rbf, fcut = GaussianRBF(8, 3.0).double()(d), CosineCutoff(3.0)(d)
    out = conv(x, rbf, fcut, edges)
    perm = torch.randperm(N_ATOMS)
    inverse = torch.argsort(perm)
    out_perm = conv(x[perm], rbf, fcut, inverse[edges])
    assert torch.allclose(out_perm, out[perm], atol=1e-12)
    receivers = set(edges[0].tolist())
    isolated = [a for a in range(N_ATOMS) if a not in receivers]
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


def test_blocks_reject_bad_arguments():
    with pytest.raises(ValueError, match="lmax"):
        check_lmax(0)
    with pytest.raises(ValueError, match="lmax"):
        SO3Convolution(0, 4, n_rbf=4)
    with pytest.raises(ValueError, match="n_rbf"):
        GaussianRBF(1, 3.0)
