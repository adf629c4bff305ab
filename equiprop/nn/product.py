"""Channel-wise tensor product of node features with themselves (raises body order)."""

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, coupling_paths, n_components, sparse_couplings
from equiprop.nn.scatter import gather_rows, scatter_sum
from equiprop.nn.so3linear import SO3Linear


class BodyOrderProduct(nn.Module):
    """``y = TP_uuu(x, Linear(x))``: couples each channel with a mixed copy of itself.

    After a convolution (two-body messages), the product of two such features
    carries three-body information. One learned weight per channel and path
    ``l1 x l2 -> l3``. Shapes: ``[n, (lmax + 1)^2, features] -> [n, (lmax_out + 1)^2,
    features]``: with ``lmax_out < lmax`` only the outputs of degree <= lmax_out are
    computed (the last interaction, whose higher degrees no readout uses).

    Computed from the non-zero Clebsch-Gordan entries only (83 at lmax 2):
    gather the two factors of every entry, multiply them with the entry's
    coefficient times its path's channel weights, and add each product into
    its output component (docs/performance.md, step 10; a dense contraction
    over all 81 component pairs does 10x the arithmetic).
    """

    def __init__(self, lmax: int, features: int, lmax_out: int | None = None):
        super().__init__()
        self.lmax = check_lmax(lmax)
        self.lmax_out = self.lmax if lmax_out is None else min(check_lmax(lmax_out, minimum=0), self.lmax)
        self.mix = SO3Linear(lmax, features, features)
        paths = coupling_paths(lmax, lmax, self.lmax_out)
        cg = sparse_couplings(paths, lmax, lmax, self.lmax_out)
        for name in ("path", "m1", "m2", "m3"):
            self.register_buffer(f"cg_{name}", getattr(cg, name), persistent=False)  # [K]
        self.register_buffer("cg_value", cg.value.to(torch.get_default_dtype()), persistent=False)  # [K]
        self.weight = nn.Parameter(torch.randn(len(paths), features))  # [P, F]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m, f = x.shape
        x_t = x.transpose(0, 1).reshape(m, n * f)  # [M, n*F]
        y_t = self.mix(x).transpose(0, 1).reshape(m, n * f)  # [M, n*F]
        weights = self.cg_value[:, None] * gather_rows(self.weight, self.cg_path)  # [K, F]
        pairs = gather_rows(x_t, self.cg_m1) * gather_rows(y_t, self.cg_m2)  # [K, n*F]
        terms = pairs.view(-1, n, f) * weights[:, None, :]  # [K, n, F]
        out = scatter_sum(terms, self.cg_m3, n_components(self.lmax_out))  # [M_out, n, F]
        return out.transpose(0, 1)  # [n, M_out, F]
