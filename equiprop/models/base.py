"""What SchNet and SO3Net share: inputs -> representation -> property heads.

Subclasses build a representation (``represent``); this class turns its
features into charges, dipoles, energies and forces.
"""

import torch
from torch import nn

from equiprop.data.batch import GraphBatch
from equiprop.data.typemap import TypeMap
from equiprop.keys import Property
from equiprop.nn.geometry import edge_vectors, strained, stress_from_strain_derivative
from equiprop.nn.precision import as_dtype
from equiprop.nn.electrostatics import KINDS, DampedMultipoles, fixed_shapes
from equiprop.nn.induction import Induction
from equiprop.nn.repulsion import PairRepulsion
from equiprop.nn.charge_transfer import FormalCharges, transferred
from equiprop.nn.embedding import FormalChargeEmbedding
from equiprop.nn.readout import (ChargeSpread, PolarizabilityReadout, ScalarReadout, centered_positions,
                                 constrain_charges, point_quadrupoles)
from equiprop.nn.scatter import scatter_sum
from equiprop.models.normalization import atomic_energy_scale, charge_columns, element_counts, fit_references, total_charges


# charge_spread: how the charge constraint distributes the excess (formal: conserved per molecule)
SPREADS = ("uniform", "learned", "formal")


def constructor_arguments(arguments: dict) -> dict:
    """A model's constructor arguments as JSON-friendly ``hparams`` (``type(m)(**m.hparams)`` rebuilds it)."""
    hparams = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
    hparams["elements"] = list(hparams["elements"])
    hparams["targets"] = [p.value for p in Property.parse(hparams["targets"])]
    hparams["dtype"] = str(as_dtype(hparams["dtype"])).removeprefix("torch.")
    return hparams


class AtomisticModel(nn.Module):
    """Base of the equiprop models. Outputs are keyed by :class:`equiprop.keys.Property`.

    Buffers stored with the weights: ``element_energies [n_types]`` (eV, the
    per-element reference energies added to every atom's energy), ``charge_energies [2]``
    (eV per unit of positive and of negative total charge, added to every charged structure's) and
    ``energy_scale`` (eV, multiplies the network's atomic energy). With
    ``repulsion`` (``"O-O:2.3"``) a switched ZBL pair energy is added to the
    network's (:class:`equiprop.nn.repulsion.PairRepulsion`).
    """

    def __init__(
        self,
        elements,
        cutoff: float,
        features: int,
        targets,
        charge_constraint: bool,
        dipole_from_charges: bool,
        repulsion: str = "",
        electrostatics: str = "none",
        charge_spread: str = "uniform",
        formal_features: bool = True,
    ):
        super().__init__()
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.type_map = TypeMap(tuple(elements))
        self.cutoff = float(cutoff)
        self.targets = Property.parse(targets)
        self.charge_constraint = charge_constraint
        self.dipole_from_charges = dipole_from_charges
        if electrostatics not in KINDS:
            raise ValueError(f"electrostatics {electrostatics!r}: choose from {', '.join(KINDS)}")
        if electrostatics != "none" and Property.ENERGY not in self.targets:
            raise ValueError("electrostatics is an energy term: it needs the energy target")
        needs_charges = (Property.CHARGES in self.targets or Property.QUADRUPOLE in self.targets
                         or (self.predicts_dipole and dipole_from_charges) or electrostatics != "none")
        magnitude_only = Property.DIPOLE_MAGNITUDE in self.targets and Property.DIPOLE not in self.targets
        self.charge_head = ScalarReadout(features, zero_init=not magnitude_only) if needs_charges else None
        if charge_spread not in SPREADS:
            raise ValueError(f"charge_spread {charge_spread!r}: choose from {', '.join(SPREADS)}")
        # where the constraint puts each structure's excess charge: evenly, or by learned weights
        learned = charge_spread == "learned" and needs_charges and charge_constraint
        self.charge_spread = ChargeSpread(features) if learned else None
        # formal charges plus the head's charges compensated along the graph: each molecule keeps its own (nn/charge_transfer.py)
        formal = charge_spread == "formal" and needs_charges and charge_constraint
        self.formal_charges = FormalCharges(self.type_map.elements, cutoff) if formal else None
        # ... which also feed the embedding (formal_features): a neighbour's charge state is seen from the first interaction
        self.formal_embedding = FormalChargeEmbedding(features) if formal and formal_features else None
        self.energy_head = ScalarReadout(features) if Property.ENERGY in self.targets else None
        # alpha_i I + beta_i (3 r r^T - r^2 I) / 2 per atom, r from the centre (invariant models too)
        self.polarizability_head = PolarizabilityReadout(features) if Property.POLARIZABILITY in self.targets else None
        # equivariant heads: set by models with l >= 1 features (SO3Net)
        self.dipole_head = self.quadrupole_head = self.polarizability_tensor_head = None
        if repulsion and Property.ENERGY not in self.targets:
            raise ValueError("repulsion is an energy term: it needs the energy target")
        # a floor under the energy for pairs closer than any data (nn/repulsion.py), e.g. "O-O:2.3"
        self.repulsion = PairRepulsion(repulsion, self.type_map.elements, cutoff) if repulsion else None
        # the learned multipoles' energy over all pairs, beyond the cutoff too (nn/electrostatics.py)
        self.electrostatics = DampedMultipoles() if electrostatics != "none" else None
        self.multipole_electrostatics = electrostatics in ("multipole", "polarizable")  # atomic dipoles and quadrupoles too
        # each atom's dipole induced by the others' multipoles beyond the cutoff, and its energy (nn/induction.py)
        self.induction = Induction(len(self.type_map), cutoff) if electrostatics == "polarizable" else None
        self.register_buffer("element_energies", torch.zeros(len(self.type_map)))
        self.register_buffer("charge_energies", torch.zeros(2))
        self.register_buffer("energy_scale", torch.tensor(1.0))

    @property
    def predicts_dipole(self) -> bool:
        """Whether the dipole vector is computed (a target itself, or for its magnitude)."""
        return Property.DIPOLE in self.targets or Property.DIPOLE_MAGNITUDE in self.targets

    def fit_energy_references(self, frames, energies, scale: bool = True) -> None:
        """Set ``element_energies`` and ``charge_energies`` by least squares on training ``frames`` and their ``energies`` (eV).

        With ``scale``, ``energy_scale`` becomes the RMS per-atom residual, so the
        network learns a target of order one. See
        :func:`equiprop.models.normalization.fit_references`.
        """
        counts, charges = element_counts(frames, self.type_map), total_charges(frames)
        references, charge_energies = fit_references(counts, charges, energies)
        with torch.no_grad():
            self.element_energies.copy_(torch.as_tensor(references))
            self.charge_energies.copy_(torch.as_tensor(charge_energies))
            if scale:
                offsets = charge_columns(charges) @ charge_energies
                self.energy_scale.fill_(atomic_energy_scale(counts, energies, references, offsets))

    @property
    def needs_atomic_dipoles(self) -> bool:
        """Whether per-atom dipoles are read out (for the dipole, and for the quadrupole they contribute to)."""
        return self.predicts_dipole or Property.QUADRUPOLE in self.targets

    def embed(self, batch: GraphBatch, formal: torch.Tensor | None = None) -> torch.Tensor:
        """Each atom's scalar features before the first interaction, ``[n_atoms, features]``: its element's,
        plus, for a model with ``formal_features``, its formal charge's (``formal [n_atoms]``)."""
        x = self.embedding(batch.types)
        if self.formal_embedding is not None:
            x = x + self.formal_embedding(formal.to(x.dtype))
        return x

    def represent(self, batch: GraphBatch, vectors: torch.Tensor,
                  formal: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Invariant features ``[n_atoms, features]`` and equivariant ones ``[n_atoms, (l + 1)^2, features]``
        (None for an invariant model), which the equivariant heads read (``dipole_head``: l=1 vectors,
        ``quadrupole_head`` and ``polarizability_tensor_head``: l=2 tensors).

        ``vectors [n_edges, 3]``; for a ``paired_edges`` batch only the first
        half's ``[n_edges / 2, 3]`` (the second half are their negatives). ``formal [n_atoms]``: the
        formal charges (:meth:`_formal`) that :meth:`embed` adds for a model with ``formal_features``.
        """
        raise NotImplementedError

    def forward(self, batch: GraphBatch, compute_forces: bool = False,
                compute_stress: bool = False) -> dict[Property, torch.Tensor]:
        """Predict the model's targets for a batch (forces only if ``compute_forces``).

        Returns ``charges [n_atoms]``, ``dipole [n_structures, 3]``,
        ``dipole_magnitude [n_structures]``, ``energy [n_structures]``, ``forces
        [n_atoms, 3]``, each present if it is a target; with ``compute_stress``
        (energy models) also ``stress [n_structures, 3, 3]`` (:func:`~equiprop.nn.geometry.strained`).
        """
        positions = batch.positions
        if (compute_forces or compute_stress) and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        if not compute_stress:
            out = self.outputs(batch, positions)
            if compute_forces and Property.ENERGY in out:
                (gradient,) = torch.autograd.grad(out[Property.ENERGY].sum(), positions, create_graph=self.training)
                out[Property.FORCES] = -gradient
            return out
        if Property.ENERGY not in self.targets:
            raise ValueError("stress is the strain derivative of the energy: this model predicts no energy")
        strain = torch.zeros_like(batch.cell, requires_grad=True)  # [n_structures, 3, 3]
        deformed, cell = strained(positions, batch.cell, strain, batch.structure)
        out = self.outputs(batch, deformed, cell=cell)
        d_positions, d_strain = torch.autograd.grad(out[Property.ENERGY].sum(), [positions, strain],
                                                    create_graph=self.training)
        if compute_forces:
            out[Property.FORCES] = -d_positions
        out[Property.STRESS] = stress_from_strain_derivative(d_strain, batch.cell)
        return out

    def outputs(self, batch: GraphBatch, positions: torch.Tensor, references: bool = True,
                cell: torch.Tensor | None = None, vectors: torch.Tensor | None = None) -> dict[Property, torch.Tensor]:
        """Every target but forces, as functions of ``positions [n_atoms, 3]`` (used instead of ``batch.positions``)
        and ``cell [n_structures, 3, 3]`` (instead of ``batch.cell``; strained for the stress).

        ``references=False``: the energy without the element reference energies
        (:meth:`reference_energy`), resolved to float32 precision of its own small
        size rather than of the total (a committee's energy spread needs this).

        ``vectors [n_edges, 3]``: the edge vectors ``r_j - r_i + S @ cell`` of ``batch.edge_index``
        (not paired), given instead of computed from ``positions``: an engine's neighbour list
        carries them with its own autograd (``engines/metatomic.py``).

        Forces are ``-d energy / d positions``: :meth:`forward` takes them by autograd;
        a functional transform (``torch.func.grad``, as in ``bench/compile_speed.py``) can too.
        """
        edge_index, cell_shifts = batch.edge_index, batch.cell_shifts
        if batch.paired_edges:  # the second half reverses the first: geometry once per pair
            if vectors is not None:
                raise ValueError("precomputed vectors need a batch without paired_edges")
            half = edge_index.shape[1] // 2
            edge_index, cell_shifts = edge_index[:, :half], cell_shifts[:half]
        if vectors is None:
            cell = batch.cell if cell is None else cell
            vectors = edge_vectors(positions, edge_index, cell_shifts, cell, batch.structure)
        formal = self._formal(batch, edge_index, vectors)  # [n_atoms] or None: for the embedding and the charges
        scalars, features = self.represent(batch, vectors, formal)
        atomic_dipoles = self._head(self.dipole_head, features)  # [n_atoms, 3]
        atomic_quadrupoles = self._head(self.quadrupole_head, features)  # [n_atoms, 3, 3]
        out: dict[Property, torch.Tensor] = {}
        charges = self._charges(scalars, batch, edge_index, vectors, formal) if self.charge_head is not None else None
        if Property.CHARGES in self.targets:
            out[Property.CHARGES] = charges
        periodic = _periodic_structures(batch) if self.electrostatics is not None else None  # [n_structures]
        induction, total_dipoles = None, atomic_dipoles  # permanent and induced atomic dipoles [n_atoms, 3]
        if self.induction is not None:  # models with induction have atomic dipoles (so3net.py)
            induction, induced = self._induction(charges, atomic_dipoles, positions, batch, periodic)
            total_dipoles = atomic_dipoles + induced
        if self.predicts_dipole:
            dipole = self._dipole(charges, total_dipoles, positions, batch)
            if Property.DIPOLE in self.targets:
                out[Property.DIPOLE] = dipole
            if Property.DIPOLE_MAGNITUDE in self.targets:
                out[Property.DIPOLE_MAGNITUDE] = torch.linalg.vector_norm(dipole, dim=1)
        if Property.QUADRUPOLE in self.targets:
            out[Property.QUADRUPOLE] = self._quadrupole(charges, total_dipoles, atomic_quadrupoles, positions, batch)
        if Property.POLARIZABILITY in self.targets:
            out[Property.POLARIZABILITY] = self._polarizability(scalars, features, positions, batch)
        if Property.ENERGY in self.targets:
            atomic = self.energy_head(scalars) * self.energy_scale
            if references:
                atomic = atomic + self.element_energies[batch.types]
            out[Property.ENERGY] = scatter_sum(atomic, batch.structure, batch.n_structures)
            if references:
                out[Property.ENERGY] = out[Property.ENERGY] + self._charge_reference(batch)
            if self.repulsion is not None:
                lengths = torch.linalg.vector_norm(vectors, dim=1)
                out[Property.ENERGY] = out[Property.ENERGY] + self.repulsion(
                    batch.types, edge_index, lengths, batch.structure, batch.n_structures, batch.paired_edges)
            if self.electrostatics is not None:
                multipoles = (atomic_dipoles, atomic_quadrupoles) if self.multipole_electrostatics else (None, None)
                out[Property.ENERGY] = out[Property.ENERGY] + self.electrostatics(
                    charges, positions, batch.structure, batch.n_structures, *multipoles,
                    cell=batch.cell if cell is None else cell, periodic=periodic)
            if induction is not None:
                out[Property.ENERGY] = out[Property.ENERGY] + induction
        return out

    def _induction(self, charges, atomic_dipoles, positions, batch: GraphBatch, periodic):
        """Induction energy ``[n_structures]`` and induced dipoles ``[n_atoms, 3]`` (nn/induction.py);
        ``periodic`` as :func:`_periodic_structures` gives it."""
        if periodic is not None and bool(periodic.any()):
            raise ValueError(f"electrostatics 'polarizable' sums induction over open boundaries only: structure "
                             f"{int(periodic.nonzero()[0, 0])} of the batch is a periodic cell")
        return self.induction(charges, positions, batch.types, batch.structure, batch.n_structures, atomic_dipoles)

    def reference_energy(self, batch: GraphBatch) -> torch.Tensor:
        """The reference energy per structure ``[n_structures]`` (eV): its element energies and its charge's."""
        elements = scatter_sum(self.element_energies[batch.types], batch.structure, batch.n_structures)
        return elements + self._charge_reference(batch)

    def _charge_reference(self, batch: GraphBatch) -> torch.Tensor:
        """``charge_energies`` times the positive and negative parts of each total charge, ``[n_structures]``."""
        charge = batch.total_charge.to(self.charge_energies.dtype)
        return self.charge_energies[0] * charge.clamp(min=0) + self.charge_energies[1] * (-charge).clamp(min=0)

    def _formal(self, batch: GraphBatch, edge_index: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor | None:
        """Formal charges ``[n_atoms]`` (nn/charge_transfer.py) for a model with the formal spread, else None;
        ``edge_index [2, n_edges]`` and ``vectors [n_edges, 3]`` as :meth:`represent` gets them."""
        if self.formal_charges is None:
            return None
        lengths = torch.linalg.vector_norm(vectors, dim=1)  # [n_edges]
        return self.formal_charges(batch.types, edge_index, lengths, 1.0 if batch.paired_edges else 0.5)

    def _charges(self, scalars: torch.Tensor, batch: GraphBatch, edge_index: torch.Tensor,
                 vectors: torch.Tensor, formal: torch.Tensor | None) -> torch.Tensor:
        """``[n_atoms]``; ``edge_index [2, n_edges]`` and ``vectors [n_edges, 3]`` as :meth:`represent` got them,
        ``formal`` from :meth:`_formal`."""
        charges = self.charge_head(scalars)  # [n_atoms]
        if formal is not None:  # q = f + c - T^hops c: each molecule keeps its formal charge
            lengths = torch.linalg.vector_norm(vectors, dim=1)  # [n_edges]
            pair_weight = 1.0 if batch.paired_edges else 0.5
            charges = formal + transferred(charges, edge_index, self.formal_charges.switch(lengths), pair_weight)
        if self.charge_constraint:
            weights = self.charge_spread(scalars) if self.charge_spread is not None else None  # [n_atoms]
            charges = constrain_charges(charges, batch.structure, batch.total_charge, batch.n_atoms, weights)
        return charges

    def _dipole(self, charges, atomic_dipoles, positions, batch: GraphBatch) -> torch.Tensor:
        """``sum_i q_i (r_i - centre) + sum_i mu_i`` per structure, ``[n_structures, 3]``."""
        dipole = positions.new_zeros((batch.n_structures, 3))
        if charges is not None and self.dipole_from_charges:
            arms = centered_positions(positions, batch.structure, batch.n_atoms)
            dipole = dipole + scatter_sum(charges[:, None] * arms, batch.structure, batch.n_structures)
        if atomic_dipoles is not None:
            dipole = dipole + scatter_sum(atomic_dipoles, batch.structure, batch.n_structures)
        return dipole

    @staticmethod
    def _head(head, features):
        return head(features) if head is not None else None

    def _polarizability(self, scalars, features, positions, batch: GraphBatch) -> torch.Tensor:
        """``sum_i alpha_i I + beta_i (3 r_i r_i^T - r_i^2 I) / 2 (+ atomic l=2 tensors)``, ``[n_structures, 3, 3]``."""
        isotropic, shape = self.polarizability_head(scalars).unbind(dim=1)  # [n_atoms] each
        arms = centered_positions(positions, batch.structure, batch.n_atoms)
        eye = torch.eye(3, dtype=positions.dtype, device=positions.device)
        alpha = isotropic[:, None, None] * eye + point_quadrupoles(shape, None, arms)
        tensors = self._head(self.polarizability_tensor_head, features)
        if tensors is not None:
            alpha = alpha + tensors
        return scatter_sum(alpha, batch.structure, batch.n_structures)

    def _quadrupole(self, charges, atomic_dipoles, atomic_quadrupoles, positions, batch: GraphBatch) -> torch.Tensor:
        """Traceless ``Theta = 1/2 sum q (3 r r^T - r^2 I)`` of the charges, plus the atomic dipoles' and
        quadrupoles' parts, about each structure's geometric centre (as the labeller), ``[n_structures, 3, 3]``."""
        arms = centered_positions(positions, batch.structure, batch.n_atoms)
        theta = point_quadrupoles(charges, atomic_dipoles, arms)  # [n_atoms, 3, 3]
        if atomic_quadrupoles is not None:
            theta = theta + atomic_quadrupoles
        return scatter_sum(theta, batch.structure, batch.n_structures)

    def predict(self, frames, batch_size: int = 32, source: str | None = None, compile: bool = False,
                graphs=None, stress: bool = False) -> dict[str, object]:
        """Predict every target (and, with ``stress``, the stress) for ASE frames; see :func:`equiprop.models.predict.predict`.

        ``compile``: through :func:`equiprop.models.compiled.compiled_inference`
        (worth it for many frames on a CPU: compiling takes up to a minute).
        """
        from equiprop.models.predict import predict
        from equiprop.models.compiled import compiled_inference

        runner = compiled_inference(self) if compile else None
        return predict(self, frames, batch_size=batch_size, source=source, runner=runner, graphs=graphs, stress=stress)


def needs_eager(model, batch: GraphBatch) -> bool:
    """Whether ``batch`` must run eagerly: periodic cells under an electrostatic term (torch-pme's Ewald sum
    has shapes that depend on the cell). Compiled and CUDA-graph runners (models/compiled.py,
    models/graphed.py) hand such batches to the eager model."""
    if getattr(model, "electrostatics", None) is None:
        return False
    periodic = _periodic_structures(batch)
    return periodic is not None and bool(periodic.any())


def _periodic_structures(batch: GraphBatch) -> torch.Tensor | None:
    """``[n_structures]`` bool: which structures are periodic cells with atoms at two or more places. The
    padding structure of a padded batch (data/padding.py: its atoms together at the origin, in a padding
    cell) is not. None while compiling, tracing or recording a CUDA graph, where reading a tensor's value
    is not allowed (those runners hand periodic batches to the eager model: :func:`needs_eager`)."""
    if fixed_shapes(batch.structure):
        return None
    periodic = (batch.cell != 0).flatten(1).any(1)  # [n_structures]
    if not bool(periodic.any()):
        return periodic
    spread = scatter_sum(batch.positions.detach().abs().sum(1), batch.structure, batch.n_structures)  # 0: all at 0
    return periodic & (spread > 0)
