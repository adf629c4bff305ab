"""A floor under the model: ZBL screened nuclear repulsion for chosen element pairs, off beyond a radius.

``PairRepulsion("O-O:2.3")`` adds, for every O-O pair closer than 2.3 A,
the Ziegler-Biersack-Littmark universal screened Coulomb repulsion
(``Z1 Z2 e^2 / (4 pi eps0 r) * phi(r / a)``, ``a = 0.46850 / (Z1^0.23 + Z2^0.23)`` A),
times a switch that is 1 up to ``r_off - width`` and falls to 0 at ``r_off`` as
a cosine (continuous energy and forces). Pairs not named get nothing: applied
to every pair, ZBL puts 11 eV per water molecule onto its own bonds and a
repulsion the size of a hydrogen bond onto the hydrogen bonds
(docs/design.md, "A floor under the model"), so the guard is meant for the
distances no simulation of the real system visits (O-O below about 2.3 A in
water), where the data are thin.
"""

import math

import torch
from ase.data import atomic_numbers
from torch import nn

from equiprop.nn.scatter import scatter_sum

COULOMB = 14.399645  # e^2 / (4 pi eps0), eV * Angstrom
ZBL_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
ZBL_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)


def parse_pairs(spec: str, elements) -> dict[tuple[str, str], float]:
    """``"O-O:2.3,O-H:1.5"`` -> ``{("O", "O"): 2.3, ("H", "O"): 1.5}`` (pair names sorted); ValueError if malformed."""
    pairs = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        try:
            names, radius = item.split(":")
            first, second = names.split("-")
            radius = float(radius)
        except ValueError:
            raise ValueError(f"repulsion {item!r}: expected PAIR:RADIUS such as O-O:2.3") from None
        for name in (first, second):
            if name not in elements:
                raise ValueError(f"repulsion {item!r}: element {name!r} is not among the model's {list(elements)}")
        if radius <= 0:
            raise ValueError(f"repulsion {item!r}: the radius must be positive")
        pairs[tuple(sorted((first, second)))] = radius
    return pairs


class PairRepulsion(nn.Module):
    """Switched ZBL energy per structure ``[n_structures]`` (eV) from edge lengths.

    Buffers: ``r_off [n_types, n_types]`` (Angstrom, 0 where a pair gets no
    repulsion), ``charge [n_types]`` (atomic numbers).
    """

    def __init__(self, spec: str, elements, cutoff: float, width: float = 0.4):
        super().__init__()
        pairs = parse_pairs(spec, elements)
        self.width = float(width)
        r_off = torch.zeros(len(elements), len(elements))
        for (first, second), radius in pairs.items():
            if radius > cutoff:
                raise ValueError(f"repulsion {first}-{second}:{radius}: the radius exceeds the cutoff ({cutoff} A)")
            if radius <= self.width:
                raise ValueError(f"repulsion {first}-{second}:{radius}: the radius must exceed the switch width ({self.width} A)")
            i, j = elements.index(first), elements.index(second)
            r_off[i, j] = r_off[j, i] = radius
        self.register_buffer("r_off", r_off)
        self.register_buffer("charge", torch.tensor([float(atomic_numbers[e]) for e in elements]))

    def forward(self, types, edge_index, lengths, structure, n_structures: int, each_pair_once: bool) -> torch.Tensor:
        """``types [n_atoms]``, ``edge_index [2, n_edges]``, ``lengths [n_edges]`` -> energy ``[n_structures]``.

        ``each_pair_once``: the edges hold each pair once (else twice, i->j and j->i).
        """
        a, b = types[edge_index[0]], types[edge_index[1]]
        r_off = self.r_off[a, b]
        z1, z2 = self.charge[a], self.charge[b]
        screening = 0.46850 / (z1**0.23 + z2**0.23)
        r = lengths.clamp_min(1e-3)
        x = r / screening
        phi = sum(c * torch.exp(-e * x) for c, e in zip(ZBL_COEFFICIENTS, ZBL_EXPONENTS))
        # switch: 1 below r_off - width, cosine to 0 at r_off; 0 for pairs without repulsion (r_off = 0)
        t = ((r - (r_off - self.width)) / self.width).clamp(0.0, 1.0)
        switch = torch.where(r < r_off, 0.5 * (1 + torch.cos(math.pi * t)), torch.zeros_like(r))
        pair = COULOMB * z1 * z2 / r * phi * switch
        if not each_pair_once:
            pair = 0.5 * pair
        return scatter_sum(pair, structure[edge_index[0]], n_structures)
