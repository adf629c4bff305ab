"""A committee (ensemble) of independently trained models: mean predictions and their spread.

The members are separate networks of one architecture, trained with different
seeds and batch orders on the same split (``equiprop train --ensemble N``;
docs/design.md "Committees"). The committee behaves like one model: its
:meth:`forward` gives the members' mean of every target (forces are the mean
of the members' forces, which is minus the gradient of the mean energy), so
evaluation, the symmetry check and the ASE calculator work unchanged.
:meth:`member_outputs` keeps the members apart, for the spread:
:func:`spread` turns them into the ``*_std`` arrays that ``predict`` reports.
"""

import torch
from torch import nn

from equiprop.data.batch import GraphBatch
from equiprop.keys import Property
from equiprop.nn.geometry import strained, stress_from_strain_derivative

#: Spread keys added to predictions (the members' sample standard deviation, ddof=1).
STD_SUFFIX = "_std"


class Committee(nn.Module):
    """``members``: two or more models with the same elements, cutoff and targets."""

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(members)}")
        first = members[0]
        for k, member in enumerate(members[1:], start=1):
            for name in ("targets", "cutoff"):
                if getattr(member, name) != getattr(first, name):
                    raise ValueError(f"member {k} has {name} {getattr(member, name)}, member 0 {getattr(first, name)}")
            if member.type_map.elements != first.type_map.elements:
                raise ValueError(f"member {k} has elements {member.type_map.elements}, member 0 {first.type_map.elements}")
        self.members = nn.ModuleList(members)
        self.type_map, self.cutoff, self.targets = first.type_map, first.cutoff, first.targets

    @property
    def hparams(self) -> dict:
        """The shared hyperparameters (those of member 0; elements, cutoff and targets agree)."""
        return self.members[0].hparams

    @property
    def element_energies(self) -> torch.Tensor:
        """``[n_types]`` eV; the members share them (fitted on the same training split)."""
        return self.members[0].element_energies

    def reference_energy(self, batch: GraphBatch) -> torch.Tensor:
        """Member 0's reference energy per structure ``[n_structures]`` (eV; the members share their references)."""
        return self.members[0].reference_energy(batch)

    def __len__(self) -> int:
        return len(self.members)

    def member_outputs(self, batch: GraphBatch, compute_forces: bool = False, relative_energy: bool = False,
                       compute_stress: bool = False) -> dict[Property, torch.Tensor]:
        """Every member's targets stacked on a new leading axis: ``energy [M, n_structures]``, ``forces [M, n_atoms, 3]``...

        Forces: each member differentiates its own copy of the positions, so one
        backward pass gives all M force fields (and, with ``compute_stress``, all
        M stresses ``[M, n_structures, 3, 3]`` from their own strains). ``relative_energy``: energies
        less member 0's element reference energies. In float32 a total of 10^4 eV
        resolves only ~1 meV, too coarse for the spread, so :meth:`mean_and_spread`
        works with the relative energies and adds the references once at the end.
        """
        grad = compute_forces or compute_stress
        copies = [batch.positions.detach().requires_grad_(grad) for _ in self.members]
        strains = [torch.zeros_like(batch.cell, requires_grad=True) for _ in self.members] if compute_stress else []
        with torch.set_grad_enabled(grad or torch.is_grad_enabled()):
            if compute_stress:
                deformed = [strained(r, batch.cell, e, batch.structure) for r, e in zip(copies, strains)]
                outs = [member.outputs(batch, p, references=False, cell=c) for member, (p, c) in zip(self.members, deformed)]
            else:
                outs = [member.outputs(batch, r, references=False) for member, r in zip(self.members, copies)]
            stacked = {prop: torch.stack([o[prop] for o in outs]) for prop in outs[0]}
            if grad and Property.ENERGY in stacked:
                gradients = torch.autograd.grad(stacked[Property.ENERGY].sum(), copies + strains, create_graph=self.training)
                if compute_forces:
                    stacked[Property.FORCES] = -torch.stack(gradients[: len(copies)])
                if compute_stress:
                    stacked[Property.STRESS] = torch.stack(
                        [stress_from_strain_derivative(g, batch.cell) for g in gradients[len(copies):]])
        if Property.ENERGY in stacked:
            base = self.members[0].reference_energy(batch)
            shifts = torch.stack([m.reference_energy(batch) - base for m in self.members])  # 0 for shared references
            stacked[Property.ENERGY] = stacked[Property.ENERGY] + shifts + (0.0 if relative_energy else base)
        return stacked

    def mean_and_spread(self, batch: GraphBatch, compute_forces: bool = False, compute_stress: bool = False):
        """(the members' means keyed by Property, the :func:`spread` keyed by ``"<name>_std"``)."""
        stacked = self.member_outputs(batch, compute_forces, relative_energy=True, compute_stress=compute_stress)
        means = {prop: values.mean(dim=0) for prop, values in stacked.items()}
        if Property.ENERGY in means:
            means[Property.ENERGY] = means[Property.ENERGY] + self.members[0].reference_energy(batch)
        return means, spread(stacked)

    def forward(self, batch: GraphBatch, compute_forces: bool = False,
                compute_stress: bool = False) -> dict[Property, torch.Tensor]:
        """The members' mean of each target (shapes as :meth:`AtomisticModel.forward`)."""
        return self.mean_and_spread(batch, compute_forces, compute_stress)[0]

    def predict(self, frames, batch_size: int = 32, source: str | None = None, compile: bool = False,
                graphs=None, stress: bool = False) -> dict[str, object]:
        """Means and spreads for ASE frames; see :func:`equiprop.models.predict.predict`."""
        from equiprop.errors import SetupError
        from equiprop.models.predict import predict

        if compile:
            raise SetupError("compile=True is not available for a committee yet; predict without it")
        return predict(self, frames, batch_size=batch_size, source=source, graphs=False, stress=stress)


def spread(stacked: dict[Property, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The members' standard deviation (ddof=1) of each target, as ``predict`` reports it.

    ``energy_std [n_structures]`` (eV), ``charges_std [n_atoms]`` (e);
    vectors are reduced to one number per atom or structure, the RMS over
    the three components of the per-component standard deviation:
    ``forces_std [n_atoms]`` (eV/Angstrom), ``dipole_std [n_structures]`` (e*Angstrom),
    ``quadrupole_std`` and ``polarizability_std [n_structures]`` (the RMS over the nine components);
    ``stress_std [n_structures, 3, 3]`` (eV/Angstrom^3) stays per component.
    """
    out = {}
    for prop, values in stacked.items():
        std = values.std(dim=0)
        if prop in (Property.FORCES, Property.DIPOLE):
            std = std.pow(2).mean(dim=-1).sqrt()
        elif prop in (Property.QUADRUPOLE, Property.POLARIZABILITY):  # the RMS over the 9 components: invariant under rotation, as for vectors
            std = std.pow(2).mean(dim=(-2, -1)).sqrt()
        out[prop.value + STD_SUFFIX] = std
    return out
