"""Charges conserved per molecule: formal charges from hydrogen ownership, plus learned transfers along edges.

``q_i = f_i + sum_j s(r_ij) (u_i - u_j)``: ``f`` are formal charges (:class:`FormalCharges`), ``u`` a
learned scalar per atom and ``s`` the cosine switch of the cutoff. The transfer term is antisymmetric
in each pair, so it moves charge along edges and never creates any: a molecule with no edge to the rest
keeps exactly the sum of its formal charges, and when molecules meet the transfers switch on smoothly
from zero (split-charge equilibration's structure, Nistor et al. 2006, with learned potentials in
place of its electronegativities). docs/design.md "Where the excess charge goes".
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
        width: how sharply the nearest heavy atom owns a proton (A).
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


def transferred(potentials: torch.Tensor, edge_index: torch.Tensor, switch: torch.Tensor,
                pair_weight: float = 0.5) -> torch.Tensor:
    """``sum_j s_ij (u_i - u_j)`` per atom, ``[n_atoms]``: charge moved along edges, summing to zero over
    any set of atoms with no edge to the rest (exactly, whichever way the pairs are listed).

    ``potentials u [n_atoms]``, ``edge_index [2, n_edges]``, ``switch s [n_edges]``; ``pair_weight`` as in
    :meth:`FormalCharges.forward`.
    """
    source, target = edge_index
    flow = pair_weight * switch * (potentials[source] - potentials[target])  # [n_edges]: from target to source
    n_atoms = potentials.shape[0]
    return scatter_sum(flow, source, n_atoms) - scatter_sum(flow, target, n_atoms)
