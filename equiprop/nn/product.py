"""Channel-wise tensor product of node features with themselves (raises body order)."""

import torch
from torch import nn

from equiprop.nn.irreps import check_lmax, coupling_paths, dense_couplings, n_components
from equiprop.nn.so3linear import SO3Linear


class BodyOrderProduct(nn.Module):
    """``y = TP_uuu(x, Linear(x))``: couples each channel with a mixed copy of itself.

    After a convolution (two-body messages), the product of two such features
    carries three-body information. One learned weight per channel and path
    ``l1 x l2 -> l3``. Shapes: ``[n, (lmax + 1)^2, features] -> same``.

    Computed as one large matmul (``[R, M*M] @ [M*M, n*F]``) of the outer products ``x_m1 * y_m2`` with a
    Clebsch-Gordan table that has one row per path and output component (35
    rows at lmax 2); the rows are then weighted per channel and summed into
    their components (docs/performance.md, step 7).
    """

    def __init__(self, lmax: int, features: int):
        super().__init__()
        self.lmax = check_lmax(lmax)
        self.mix = SO3Linear(lmax, features, features)
        paths = coupling_paths(lmax, lmax, lmax)
        cg = dense_couplings(paths, lmax, lmax, lmax).flatten(1, 2)  # [P, M*M, M]
        rows = [(k, m3) for k, p in enumerate(paths) for m3 in range(p.l3**2, (p.l3 + 1) ** 2)]
        path_of_row, component_of_row = torch.tensor(rows).T  # [R], [R]
        to_components = torch.zeros(n_components(lmax), len(rows), dtype=torch.float64)
        to_components[component_of_row, torch.arange(len(rows))] = 1.0
        dtype = torch.get_default_dtype()
        self.register_buffer("couplings", cg[path_of_row, :, component_of_row].to(dtype), persistent=False)  # [R, M*M]
        self.register_buffer("to_components", to_components.to(dtype), persistent=False)  # [M, R]
        self.register_buffer("path_of_row", path_of_row, persistent=False)  # [R]
        self.weight = nn.Parameter(torch.randn(len(paths), features))  # [P, F]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m, f = x.shape
        x_t, y_t = x.transpose(0, 1), self.mix(x).transpose(0, 1)  # [M, n, F]
        outer = (x_t[:, None] * y_t[None, :]).reshape(m * m, n * f)  # [M*M, n*F]
        rows = (self.couplings @ outer).view(-1, n, f)  # [R, n, F]: every path's every output component
        weighted = rows * self.weight.index_select(0, self.path_of_row)[:, None, :]  # [R, n, F]
        return (self.to_components @ weighted.view(-1, n * f)).view(m, n, f).transpose(0, 1)  # [n, M, F]
