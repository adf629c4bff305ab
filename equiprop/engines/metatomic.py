"""An equiprop model (or committee) exported as a TorchScript metatomic model.

metatomic (https://docs.metatensor.org/metatomic) is the model interface that
metatomic-ase, i-PI (``<ffdirect><pes>metatomic</pes>``), LAMMPS, GROMACS and
PLUMED builds run. The exported file holds no Python: the engine gives each
system's positions and its neighbour list (full, strict, the model's cutoff),
and takes forces and stress by autograd of the energy through them.

How: the network itself is not TorchScript-able (dataclass batches,
``Property``-keyed dicts), so :class:`Core`, a function of plain tensors
(positions, types, edges, edge vectors), is *traced* (``torch.jit.trace``) once
on a small system; a traced graph replays the same operations for any number of
atoms and edges (the test checks sizes other than the one traced). The
metatomic wrapper (:class:`MetatomicWrapper`) is scripted and calls the traced
cores for each system.

Outputs (all float32 or float64, the model's precision):

- ``energy`` (eV, per system); a committee adds ``energy_ensemble`` (each member)
  and ``energy_uncertainty`` (the members' standard deviation, ddof=1);
- ``charge`` (e, per atom), metatomic's standard name for partial charges;
- ``equiprop::dipole`` (e*Angstrom, per system, components x, y, z); NaN for a
  periodic system, where the dipole of one cell is not defined.

Limits: total charge 0 (metatomic systems carry no charge to condition on);
no ``selected_atoms`` (the energy is a whole-system sum), so no LAMMPS domain
decomposition across ranks.
"""

import warnings
from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import nn

from metatensor.torch import Labels, TensorBlock, TensorMap
from metatomic.torch import (AtomisticModel, ModelCapabilities, ModelMetadata, ModelOutput, NeighborListOptions,
                             System)

from equiprop.data.batch import GraphBatch
from equiprop.keys import Property


class Core(nn.Module):
    """One model as a function of plain tensors, for tracing.

    ``positions [n_atoms, 3]``, ``types [n_atoms]`` (equiprop type indices),
    ``edge_index [2, n_edges]`` (receiver i, sender j; a full list, not paired),
    ``vectors [n_edges, 3]`` (``r_j - r_i + S @ cell``) ->
    ``energy [1]`` (eV), ``charges [n_atoms]`` (e), ``dipole [1, 3]`` (e*Angstrom);
    targets the model lacks come back as zeros.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, positions, types, edge_index, vectors):
        structure = torch.zeros_like(types)
        n_atoms = torch.ones_like(types).sum().reshape(1)  # a traced size, not a constant
        batch = GraphBatch(positions=positions, types=types, structure=structure, edge_index=edge_index,
                           cell_shifts=torch.zeros_like(vectors), cell=positions.new_zeros((1, 3, 3)),
                           n_atoms=n_atoms, total_charge=positions.new_zeros(1))
        out = self.model.outputs(batch, positions, vectors=vectors)
        energy = out.get(Property.ENERGY, positions.new_zeros(1))
        charges = out.get(Property.CHARGES, positions.new_zeros(positions.shape[0]))
        dipole = out.get(Property.DIPOLE, positions.new_zeros((1, 3)))
        return energy, charges, dipole


def traced_core(model, example: dict) -> torch.jit.ScriptModule:
    """:class:`Core` of ``model`` traced on ``example`` (the keyword arguments of ``Core.forward``)."""
    core = Core(model).eval()
    args = tuple(example[name] for name in ("positions", "types", "edge_index", "vectors"))
    with torch.no_grad(), warnings.catch_warnings():  # autograd through the traced operations works at run time
        # the tracer warns at every Python branch on a shape; those branches depend on the model's
        # irreps (fixed) or on a size (activation checkpointing from 4096 atoms, traced as off)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(core, args, check_trace=False)


class MetatomicWrapper(nn.Module):
    """The scripted metatomic ``forward``: neighbour list in, ``TensorMap`` outputs out.

    ``cores``: one traced :class:`Core` per committee member (one for a single
    model); ``atomic_numbers[k]`` is equiprop type ``k``.
    """

    def __init__(self, cores: List[torch.jit.ScriptModule], atomic_numbers: List[int], cutoff: float,
                 open_boundaries_only: bool = False):
        super().__init__()
        self.cores = nn.ModuleList(cores)
        self.open_boundaries_only = open_boundaries_only  # electrostatics over all pairs: no periodic cells yet
        lookup = torch.full((max(atomic_numbers) + 1,), -1, dtype=torch.int64)
        lookup[torch.tensor(atomic_numbers)] = torch.arange(len(atomic_numbers))
        self.register_buffer("type_index", lookup)
        self.neighbors = NeighborListOptions(cutoff=cutoff, full_list=True, strict=True)

    def requested_neighbor_lists(self) -> List[NeighborListOptions]:
        return [self.neighbors]

    def forward(self, systems: List[System], outputs: Dict[str, ModelOutput],
                selected_atoms: Optional[Labels] = None) -> Dict[str, TensorMap]:
        if selected_atoms is not None:
            raise ValueError("equiprop models give whole-system energies: selected_atoms is not supported")
        for name, output in outputs.items():
            if output.sample_kind != "system" and name != "charge":
                raise ValueError("equiprop models give " + name + " per system, not per atom")
        ensemble: List[torch.Tensor] = []
        charges: List[torch.Tensor] = []
        dipoles: List[torch.Tensor] = []
        for system in systems:
            if self.open_boundaries_only and bool(system.pbc.any()):
                raise ValueError("this equiprop model has electrostatics for open boundaries only: periodic systems "
                                 "need Ewald or PME, not available yet")
            pairs = system.get_neighbor_list(self.neighbors)
            edge_index = pairs.samples.values[:, :2].T.contiguous()
            vectors = pairs.values.reshape(-1, 3)
            types = self.type_index[system.types]
            member_energies: List[torch.Tensor] = []
            member_charges: List[torch.Tensor] = []
            member_dipoles: List[torch.Tensor] = []
            for core in self.cores:
                energy, q, mu = core(system.positions, types, edge_index, vectors)
                member_energies.append(energy)
                member_charges.append(q)
                member_dipoles.append(mu)
            ensemble.append(torch.cat(member_energies))
            charges.append(torch.stack(member_charges).mean(dim=0))
            dipole = torch.stack(member_dipoles).mean(dim=0)
            if bool(system.pbc.any()):
                dipole = torch.full_like(dipole, float("nan"))
            dipoles.append(dipole)
        energies = torch.stack(ensemble)  # [n_systems, n_members]
        device = energies.device
        system_samples = Labels("system", torch.arange(len(systems), device=device).reshape(-1, 1))
        single = Labels("_", torch.zeros((1, 1), dtype=torch.int32, device=device))
        result: Dict[str, TensorMap] = {}
        if "energy" in outputs:
            block = TensorBlock(values=energies.mean(dim=1, keepdim=True), samples=system_samples, components=[],
                                properties=Labels("energy", torch.zeros((1, 1), dtype=torch.int32, device=device)))
            result["energy"] = TensorMap(single, [block])
        if "energy_ensemble" in outputs:
            members = Labels("energy", torch.arange(energies.shape[1], device=device).reshape(-1, 1))
            block = TensorBlock(values=energies, samples=system_samples, components=[], properties=members)
            result["energy_ensemble"] = TensorMap(single, [block])
        if "energy_uncertainty" in outputs:
            block = TensorBlock(values=energies.std(dim=1, keepdim=True), samples=system_samples, components=[],
                                properties=Labels("energy", torch.zeros((1, 1), dtype=torch.int32, device=device)))
            result["energy_uncertainty"] = TensorMap(single, [block])
        if "charge" in outputs:
            ids: List[torch.Tensor] = []
            for k, system in enumerate(systems):
                atoms = torch.arange(len(system), device=device)
                ids.append(torch.stack([torch.full_like(atoms, k), atoms], dim=1))
            block = TensorBlock(values=torch.cat(charges).reshape(-1, 1), samples=Labels(["system", "atom"], torch.cat(ids)),
                                components=[], properties=Labels("charge", torch.zeros((1, 1), dtype=torch.int32, device=device)))
            result["charge"] = TensorMap(single, [block])
        if "equiprop::dipole" in outputs:
            xyz = Labels("xyz", torch.arange(3, device=device).reshape(-1, 1))
            block = TensorBlock(values=torch.cat(dipoles).reshape(-1, 3, 1), samples=system_samples, components=[xyz],
                                properties=Labels("dipole", torch.zeros((1, 1), dtype=torch.int32, device=device)))
            result["equiprop::dipole"] = TensorMap(single, [block])
        return result


def example_inputs(model, n_per_element: int = 3) -> dict:
    """A small cluster of every element (on a 1.6 Angstrom grid) as :class:`Core` inputs, for tracing."""
    import vesin

    dtype = model.element_energies.dtype
    n_types = len(model.type_map)
    types = torch.arange(n_types).repeat(n_per_element)  # [n_atoms]
    grid = torch.stack(torch.meshgrid(*(torch.arange(3),) * 3, indexing="ij"), dim=-1).reshape(-1, 3)
    positions = (1.6 * grid[: len(types)] + 0.05 * torch.randn(len(types), 3, generator=torch.Generator().manual_seed(0)))
    i, j, vectors = vesin.NeighborList(cutoff=model.cutoff, full_list=True).compute(
        points=positions.double().numpy(), box=torch.zeros(3, 3).double().numpy(), periodic=False, quantities="ijD")
    return {"positions": positions.to(dtype), "types": types,
            "edge_index": torch.stack([torch.as_tensor(i), torch.as_tensor(j)]).long(),
            "vectors": torch.as_tensor(vectors).to(dtype)}


def metatomic_model(model, name: str = "equiprop") -> AtomisticModel:
    """``model`` (an equiprop model or :class:`~equiprop.models.committee.Committee`) as a metatomic model."""
    from equiprop.models.committee import Committee

    model = model.eval()
    members = list(model.members) if isinstance(model, Committee) else [model]
    if Property.ENERGY not in model.targets:
        raise ValueError("a metatomic model gives an energy (the engine takes forces from it): this model predicts none")
    example = example_inputs(members[0])
    cores = [traced_core(member, example) for member in members]
    numbers = [int(z) for z in model.type_map.atomic_numbers]
    long_range = members[0].electrostatics is not None  # all pairs, traced shape-free (nn/electrostatics.py)
    wrapper = MetatomicWrapper(cores, numbers, model.cutoff, open_boundaries_only=long_range).eval()
    outputs = {"energy": ModelOutput(unit="eV", sample_kind="system")}
    if len(members) > 1:
        outputs["energy_ensemble"] = ModelOutput(unit="eV", sample_kind="system")
        outputs["energy_uncertainty"] = ModelOutput(unit="eV", sample_kind="system")
    if Property.CHARGES in model.targets:
        outputs["charge"] = ModelOutput(unit="e", sample_kind="atom", description="Hirshfeld-trained partial charges")
    if Property.DIPOLE in model.targets:
        outputs["equiprop::dipole"] = ModelOutput(unit="e*Angstrom", sample_kind="system",
                                                  description="dipole about the geometric centre; NaN for periodic systems")
    dtype = str(members[0].element_energies.dtype).removeprefix("torch.")
    capabilities = ModelCapabilities(outputs=outputs, atomic_types=numbers,
                                     interaction_range=float("inf") if long_range else model.cutoff,
                                     length_unit="Angstrom", supported_devices=["cpu"], dtype=dtype)
    kind = f"a committee of {len(members)} {type(members[0]).__name__}" if len(members) > 1 else type(model).__name__
    metadata = ModelMetadata(name=name, description=f"equiprop {kind} (elements {', '.join(model.type_map.elements)}, "
                                                    f"cutoff {model.cutoff:g} A)")
    return AtomisticModel(wrapper, metadata, capabilities)


def export(checkpoint, path) -> Path:
    """Write ``checkpoint`` (a ``best.pt`` path or a model) as a TorchScript metatomic model at ``path``."""
    from equiprop.models.checkpoint import load_model

    model = load_model(checkpoint) if isinstance(checkpoint, (str, Path)) else checkpoint
    name = Path(checkpoint).parent.name if isinstance(checkpoint, (str, Path)) else "equiprop"
    metatomic_model(model, name=name or "equiprop").save(str(path))
    return Path(path)
