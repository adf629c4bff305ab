"""SO(3)-equivariant SO3Net on e3nn irreps, with scalar and l=1 readouts."""

import torch
from e3nn import o3
from torch import nn
from torch.utils.checkpoint import checkpoint

from equiprop.data.batch import GraphBatch
from equiprop.models.base import AtomisticModel, constructor_arguments
from equiprop.nn.embedding import ElementEmbedding
from equiprop.nn.precision import default_dtype
from equiprop.nn.irreps import check_lmax, check_sh_lmax
from equiprop.nn.radial import CosineCutoff, GaussianRBF
from equiprop.keys import Property
from equiprop.nn.readout import TensorReadout, VectorReadout
from equiprop.nn.so3block import SO3Interaction


#: Batches with at least this many atoms trade compute for memory (activation checkpointing per interaction).
CHECKPOINT_ATOMS = 4096


def residual(x: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """``x + dx`` where the two may hold different degrees ``[n, M, F]``.

    The first interaction turns scalars ``[n, 1, F]`` into all degrees; the
    last returns only the degrees the readouts use, and the others are dropped.
    """
    m_x, m_dx = x.shape[1], dx.shape[1]
    if m_x < m_dx:
        return torch.cat([dx[:, :m_x] + x, dx[:, m_x:]], dim=1)
    return x[:, :m_dx] + dx


class SO3Net(AtomisticModel):
    """Equivariant message passing with features of every l up to ``lmax``.

    Scalar element embeddings are lifted to features ``[n_atoms, (lmax + 1)^2,
    features]`` of every degree l <= lmax (higher l start at zero); each interaction convolves neighbour irreps with
    the spherical harmonics of the edge direction (radially weighted tensor
    product), raises body order with a channel-wise self tensor product, applies
    a gated nonlinearity and linear mixing, and adds the result (residual).
    Scalars feed the charge and energy heads; the l=1 part feeds per-atom
    dipoles that are summed per structure; with the ``quadrupole`` target and
    lmax >= 2 the l=2 part feeds per-atom quadrupoles, added to those of the
    charges and atomic dipoles (``AtomisticModel._quadrupole``).

    Args:
        elements: ordered chemical symbols, e.g. ``["H", "O"]``; element
            ``elements[k]`` gets type index k. Stored with the model.
        cutoff: neighbour cutoff radius, Angstrom.
        lmax: highest angular momentum of the features (>= 1).
        sh_lmax: highest degree of the edge directions' spherical harmonics,
            ``lmax`` to ``2 * lmax`` (default ``lmax``). ``lmax=1, sh_lmax=2``
            keeps vector features but lets the edges' l = 2 harmonics turn them
            (as MACE with ``32x0e+32x1o`` hidden features): edge tensors
            ``[n_edges, 4, F]`` instead of ``[n_edges, 9, F]`` (docs/design.md).
        features: channels per l.
        interactions: number of interaction blocks.
        targets: any of ``"charges"``, ``"dipole"``, ``"energy"``, ``"forces"``
            (forces are always given with energy).
        n_rbf: number of Gaussian radial basis functions.
        rbf_start: centre of the first Gaussian, Angstrom.
        radial_hidden: hidden width of the radial MLPs giving tensor-product weights.
        avg_neighbors: constant that normalises neighbour sums (divided by its square root).
        charge_constraint: shift charges so each structure's sum equals its
            total charge (``atoms.info["charge"]``, default 0) exactly.
        charge_spread: how that shift is shared: ``"uniform"`` (evenly over the atoms) or
            ``"learned"`` (by positive per-atom weights from the features, nn/readout.py
            :class:`ChargeSpread`), so a neutral molecule far from an ion can stay neutral, or
            ``"formal"`` (formal charges plus the head's charges compensated along the graph, nn/charge_transfer.py:
            a molecule with no edge to the rest keeps its formal charge exactly).
        formal_features: with the formal spread, each atom's formal charge also enters its embedding
            (nn/embedding.py :class:`FormalChargeEmbedding`); False for checkpoints written before it.
        dipole_from_charges: add ``sum_i q_i (r_i - centre)`` from the predicted
            charges to the sum of atomic dipoles.
        repulsion: ``"PAIR:RADIUS"`` pairs, comma-separated (e.g. ``"O-O:2.3"``),
            that get a ZBL pair energy switched off smoothly by RADIUS
            (nn/repulsion.py), a floor under the learned energy; empty for none.
        electrostatics: ``"coulomb"`` adds the damped Coulomb energy of the predicted
            charges over every pair of a structure, no cutoff (nn/electrostatics.py);
            ``"multipole"`` that of the charges, atomic dipoles and (with the quadrupole
            target) atomic quadrupoles, the multipoles whose sums are the predicted
            dipole and quadrupole (needs the dipole target); ``"polarizable"`` that plus
            first-order induction by the multipoles beyond the cutoff (nn/induction.py; its
            induced dipoles join the dipole and quadrupole; open boundaries only).
            ``"none"`` (default) for none.
        dtype: ``"float32"`` or ``"float64"``. The model is built in this
            precision, so e3nn's Clebsch-Gordan constants are exact in it
            (casting a float32 model with ``.double()`` keeps float32-rounded
            constants: equivariant to about 1e-7 only).

    Outputs (``predict``): charges in e, dipole in e*Angstrom, energy in eV,
    forces in eV/Angstrom.
    """

    def __init__(
        self,
        elements,
        cutoff: float = 5.0,
        lmax: int = 2,
        features: int = 32,
        interactions: int = 3,
        targets=("charges", "dipole"),
        n_rbf: int = 20,
        rbf_start: float = 0.0,
        radial_hidden: int = 64,
        avg_neighbors: float = 8.0,
        sh_lmax: int | None = None,
        charge_constraint: bool = True,
        dipole_from_charges: bool = True,
        repulsion: str = "",
        electrostatics: str = "none",
        charge_spread: str = "uniform",
        formal_features: bool = True,
        dtype="float32",
    ):
        self.hparams = constructor_arguments(locals())
        with default_dtype(dtype):  # e3nn constants exact in this precision
            super().__init__(elements, cutoff, features, targets, charge_constraint, dipole_from_charges, repulsion,
                             electrostatics, charge_spread, formal_features)
            self.lmax, self.features = check_lmax(lmax), features
            self.sh_lmax = self.lmax if sh_lmax is None else check_sh_lmax(sh_lmax, self.lmax)
            self.embedding = ElementEmbedding(len(self.type_map), features)
            self.rbf = GaussianRBF(n_rbf, cutoff, rbf_start)
            self.fcut = CosineCutoff(cutoff)
            self.sh = o3.SphericalHarmonics(o3.Irreps.spherical_harmonics(self.sh_lmax), normalize=True, normalization="component")
            # the last interaction computes only the degrees its readouts use: l = 0, and l = 1 for dipoles
            wants_quadrupoles = Property.QUADRUPOLE in self.targets and self.lmax >= 2  # atomic l=2 readouts
            wants_tensors = Property.POLARIZABILITY in self.targets and self.lmax >= 2
            lmax_last = 2 if wants_quadrupoles or wants_tensors else (1 if self.needs_atomic_dipoles else 0)
            self.interactions = nn.ModuleList(
                SO3Interaction(lmax, features, n_rbf, radial_hidden, avg_neighbors,
                               lmax_last if k == interactions - 1 else None, self.sh_lmax)
                for k in range(interactions)
            )
            self.dipole_head = VectorReadout(features, features) if self.needs_atomic_dipoles else None
            self.quadrupole_head = TensorReadout(features, features) if wants_quadrupoles else None
            self.polarizability_tensor_head = TensorReadout(features, features) if wants_tensors else None
            if electrostatics in ("multipole", "polarizable") and self.dipole_head is None:
                raise ValueError(f"electrostatics={electrostatics!r} uses the atomic dipoles: add the dipole (or quadrupole) target")

    def represent(self, batch: GraphBatch, vectors: torch.Tensor,
                  formal: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        paired = batch.paired_edges  # vectors of the first half only: edge functions once per pair
        distances = torch.linalg.norm(vectors, dim=1)  # [n_edges] (n_edges / 2 if paired)
        rbf, fcut = self.rbf(distances), self.fcut(distances)  # [n_edges, n_rbf], [n_edges]
        sh = self.sh(vectors)  # [n_edges, (sh_lmax + 1)^2]
        x = self.embed(batch, formal)[:, None]  # [n_atoms, 1, features]: scalars; higher l start at zero
        # not under torch.compile: torch.func.grad (the compiled forces) cannot run checkpointing's saved-tensor hooks
        save_memory = x.shape[0] >= CHECKPOINT_ATOMS and torch.is_grad_enabled() and not torch.compiler.is_compiling()
        for interaction in self.interactions:
            if save_memory:  # recompute each block's intermediates in the backward pass instead of keeping them
                dx = checkpoint(interaction, x, sh, rbf, fcut, batch.edge_index, paired, use_reentrant=False,
                                preserve_rng_state=False)  # no randomness; and CUDA graphs cannot read the RNG state
            else:
                dx = interaction(x, sh, rbf, fcut, batch.edge_index, paired)  # [n_atoms, (lmax + 1)^2, features]
            x = residual(x, dx)
        return x[:, 0], x  # [n_atoms, features], [n_atoms, (lmax_last + 1)^2, features]
