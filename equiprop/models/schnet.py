"""Invariant SchNet: element embedding, continuous-filter convolutions, scalar heads."""

import torch
from torch import nn

from equiprop.data.batch import GraphBatch
from equiprop.keys import Property
from equiprop.models.base import AtomisticModel, constructor_arguments
from equiprop.nn.cfconv import SchNetInteraction
from equiprop.nn.embedding import ElementEmbedding
from equiprop.nn.precision import default_dtype
from equiprop.nn.radial import CosineCutoff, GaussianRBF


class SchNet(AtomisticModel):
    """Invariant message passing network (Schütt et al., 2018).

    Args:
        elements: ordered chemical symbols, e.g. ``["H", "O"]``; element
            ``elements[k]`` gets type index k. Stored with the model.
        cutoff: neighbour cutoff radius, Angstrom.
        features: width of the atom features.
        interactions: number of interaction blocks (residual updates).
        targets: any of ``"charges"``, ``"dipole"``, ``"energy"``, ``"forces"``
            (forces are always given with energy).
        n_rbf: number of Gaussian radial basis functions.
        rbf_start: centre of the first Gaussian, Angstrom.
        charge_constraint: shift charges so each structure's sum equals its
            total charge (``atoms.info["charge"]``, default 0) exactly.
        charge_spread: how that shift is shared: ``"uniform"`` (evenly over the atoms) or
            ``"learned"`` (by positive per-atom weights from the features, nn/readout.py
            :class:`ChargeSpread`), so a neutral molecule far from an ion can stay neutral, or
            ``"formal"`` (formal charges plus the head's charges compensated along the graph, nn/charge_transfer.py:
            a molecule with no edge to the rest keeps its formal charge exactly).
        formal_features: with the formal spread, each atom's formal charge also enters its embedding
            (nn/embedding.py :class:`FormalChargeEmbedding`); False for checkpoints written before it.
        dipole_from_charges: must be True when ``dipole`` is a target: an
            invariant network can only give the dipole as ``sum_i q_i r_i``
            (about each structure's geometric centre).
        repulsion: ``"PAIR:RADIUS"`` pairs, comma-separated (e.g. ``"O-O:2.3"``),
            that get a ZBL pair energy switched off smoothly by RADIUS
            (nn/repulsion.py), a floor under the learned energy; empty for none.
        electrostatics: ``"coulomb"`` adds the damped Coulomb energy of the predicted
            charges over every pair of a structure, no cutoff (nn/electrostatics.py);
            open boundaries only. ``"none"`` (default) for none.
        dtype: ``"float32"`` or ``"float64"``, the precision of the weights.

    Outputs (``predict``): charges in e, dipole in e*Angstrom, energy in eV,
    forces in eV/Angstrom.
    """

    def __init__(
        self,
        elements,
        cutoff: float = 5.0,
        features: int = 64,
        interactions: int = 3,
        targets=("charges",),
        n_rbf: int = 20,
        rbf_start: float = 0.0,
        charge_constraint: bool = True,
        dipole_from_charges: bool = True,
        repulsion: str = "",
        electrostatics: str = "none",
        charge_spread: str = "uniform",
        formal_features: bool = True,
        dtype="float32",
    ):
        self.hparams = constructor_arguments(locals())
        if electrostatics in ("multipole", "polarizable"):
            raise ValueError(f"electrostatics={electrostatics!r} needs atomic dipoles, which the invariant SchNet has not: "
                             "use 'coulomb' or SO3Net")
        if {Property.DIPOLE, Property.DIPOLE_MAGNITUDE} & set(Property.parse(targets)) and not dipole_from_charges:
            raise ValueError("SchNet is invariant: its dipole can only come from charges (dipole_from_charges=True)")
        with default_dtype(dtype):  # e3nn constants exact in this precision
            super().__init__(elements, cutoff, features, targets, charge_constraint, dipole_from_charges, repulsion,
                             electrostatics, charge_spread, formal_features)
            self.embedding = ElementEmbedding(len(self.type_map), features)
            self.rbf = GaussianRBF(n_rbf, cutoff, rbf_start)
            self.fcut = CosineCutoff(cutoff)
            self.interactions = nn.ModuleList(SchNetInteraction(features, n_rbf) for _ in range(interactions))

    def represent(self, batch: GraphBatch, vectors: torch.Tensor,
                  formal: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        distances = torch.linalg.norm(vectors, dim=1)  # [n_edges] (n_edges / 2 if paired: filters once per pair)
        rbf, fcut = self.rbf(distances), self.fcut(distances)  # [n_edges, n_rbf], [n_edges]
        x = self.embed(batch, formal)  # [n_atoms, features]
        for interaction in self.interactions:
            x = x + interaction(x, rbf, fcut, batch.edge_index, batch.paired_edges)
        return x, None
