"""Charges conserved per molecule: formal charges from hydrogen ownership, plus learned charges compensated on the graph.

``q = f + c - T^hops c``: ``f`` are formal charges (:class:`FormalCharges`), ``c`` the charge head's raw
charges, and ``T`` a lazy random walk on the graph whose edges are weighted by the cutoff's cosine switch
(:func:`transferred`). ``T`` only moves charge along edges, so a molecule with no edge to the rest
keeps exactly the sum of its formal charges, and as molecules meet charge starts to flow between them
smoothly from zero (the structure of split-charge equilibration, Nistor et al. 2006: charge moves along
bonds, none is created). docs/design.md "Where the excess charge goes".
"""

import math

import torch
from torch import nn

from equiprop.nn.radial import CosineCutoff
from equiprop.nn.scatter import scatter_sum

#: Hydrogens of each element's neutral parent hydride (H2O: 2, NH3: 3, CH4: 4, HF: 1, ...). Elements
#: absent here get 0: their formal charge is the protons they own, which is right only for no hydrogens.
HYDRIDE_HYDROGENS = {"B": 3, "C": 4, "N": 3, "O": 2, "F": 1, "Si": 4, "P": 3, "S": 2, "Cl": 1, "Br": 1, "I": 1}


class FormalCharges(nn.Module):
    """Formal charges ``[n_atoms]`` from soft hydrogen ownership: each H's +1 goes to its heavy neighbours
    in proportion to ``s(r) exp(-(r - 1 A) / width)`` (nearly all to the nearest, shared evenly by a proton
    between two oxygens), and a heavy atom X gets what it owns minus ``HYDRIDE_HYDROGENS[X]``. An H farther
    than about ``free`` from every heavy atom keeps its own +1. So a water molecule has formal charges
    ~0, H3O+ ~+1 on its O and OH- ~-1, smooth as a proton moves, and they sum to ``n_H - sum_X n_X``:
    the total charge of any cluster of hydrides and their (de)protonated ions.

    Args:
        elements: the model's elements, in type order.
        cutoff: the switch's cutoff (A): ownership needs an edge.
        width: how sharply the nearest heavy atom owns a proton (A); 0.2 trained forces about 5% better than 0.1
            on ion clusters (docs/benchmarks.md "Induction beyond the cutoff").
        free: the distance (A) at which a lone H keeps as much of itself as one neighbour would own.
    """

    def __init__(self, elements, cutoff: float, width: float = 0.2, free: float = 2.0):
        super().__init__()
        if width <= 0 or free <= 0:
            raise ValueError(f"width and free must be positive, got {width} and {free}")
        self.switch = CosineCutoff(cutoff)
        self.width = float(width)
        self.kept = math.exp(-(free - 1.0) / width)  # a lone H's weight for itself
        self.register_buffer("hydrogen", torch.tensor([e == "H" for e in elements]), persistent=False)
        hydrides = [0.0 if e == "H" else float(HYDRIDE_HYDROGENS.get(e, 0)) for e in elements]
        self.register_buffer("hydrides", torch.tensor(hydrides), persistent=False)

    def forward(self, types: torch.Tensor, edge_index: torch.Tensor, lengths: torch.Tensor,
                pair_weight: float = 0.5) -> torch.Tensor:
        """``types [n_atoms]``, ``edge_index [2, n_edges]``, ``lengths [n_edges]`` -> ``[n_atoms]``.

        ``pair_weight``: 0.5 when each pair is listed in both directions, 1 when once (paired edges).
        """
        source, target = edge_index
        hydrogen = self.hydrogen[types]  # [n_atoms]
        weight = pair_weight * self.switch(lengths) * torch.exp(-(lengths - 1.0) / self.width)  # [n_edges]
        to_target = weight * (hydrogen[source] & ~hydrogen[target]).to(weight.dtype)  # the source H's, to target
        to_source = weight * (hydrogen[target] & ~hydrogen[source]).to(weight.dtype)
        n_atoms = types.shape[0]
        total = self.kept + scatter_sum(to_target, source, n_atoms) + scatter_sum(to_source, target, n_atoms)
        owned = (scatter_sum(to_target / total[source], target, n_atoms)
                 + scatter_sum(to_source / total[target], source, n_atoms))  # [n_atoms]: protons each heavy atom owns
        heavy = owned - self.hydrides.to(weight.dtype)[types]
        return torch.where(hydrogen, self.kept / total, heavy)


def transferred(raw: torch.Tensor, edge_index: torch.Tensor, switch: torch.Tensor,
                pair_weight: float = 0.5, hops: int = 8) -> torch.Tensor:
    """``c - T^hops c`` per atom, ``[n_atoms]``: the raw charges ``c`` less their own compensation, which a
    lazy random walk on the graph carries ``hops`` steps from each atom (``T``: an atom keeps
    ``1 / (1 + D_j)`` of what it holds and hands ``s_ij / (1 + D_j)`` to each neighbour, ``D_j = sum_i s_ij``).
    ``T`` conserves what it moves, so the result sums to zero over any set of atoms with no edge to the
    rest (exactly, whichever way the pairs are listed), and a weak edge moves little. With many hops each
    molecule's excess is spread over it in proportion to ``1 + D`` (as the uniform constraint spreads a
    structure's, so a neutral molecule's charges need no correction); with one, only over the neighbours,
    and the head would have to learn charges' non-local inverse (docs/design.md).

    ``raw c [n_atoms]``, ``edge_index [2, n_edges]``, ``switch s [n_edges]``; ``pair_weight`` as in
    :meth:`FormalCharges.forward`.
    """
    source, target = edge_index
    n_atoms = raw.shape[0]
    weight = pair_weight * switch  # [n_edges]
    kept = 1.0 / (1.0 + scatter_sum(weight, source, n_atoms) + scatter_sum(weight, target, n_atoms))  # [n_atoms]
    held = raw
    for _ in range(hops):
        share = held * kept  # [n_atoms]
        held = share + scatter_sum(weight * share[target], source, n_atoms) + scatter_sum(weight * share[source], target, n_atoms)
    return raw - held
