"""Predictions for lists of ASE structures, as numpy arrays."""

import numpy as np
import torch

from equiprop.data.batch import collate
from equiprop.data.graph import frames_to_graphs
from equiprop.keys import Property, is_per_atom
from equiprop.models.committee import Committee
from equiprop.models.graphed import GraphedInference
from equiprop.models.allocator import keep_freed_memory

#: Outputs left NaN for periodic structures (see :func:`predict`).
DIPOLE_KEYS = {"dipole", "dipole_magnitude", "dipole_std", "quadrupole", "quadrupole_std", "polarizability",
               "polarizability_std"}
#: Outputs left NaN for structures not periodic in all three directions.
STRESS_KEYS = {"stress", "stress_std"}


def predict(model, frames, batch_size: int = 32, source: str | None = None, runner=None,
            graphs=None, stress: bool = False) -> dict[str, object]:
    """Run ``model`` on ``frames`` (ase.Atoms) in batches of ``batch_size``.

    ``runner``: a callable ``batch -> outputs`` of this model to use instead of
    its eager forward pass, such as :func:`equiprop.models.compiled.compiled_inference`
    (kept by the caller, so it is compiled once; the ASE calculator does).
    Without one, on a GPU the batches are replayed from CUDA graphs
    (:class:`equiprop.models.graphed.GraphedInference`; pass one as ``graphs`` to
    keep its recorded graphs across calls, as the ASE calculator does, or
    ``graphs=False`` to run eagerly).

    Returns a dict keyed by property name: ``charges`` and ``forces`` are lists
    with one array per structure (``[n_atoms_k]``, ``[n_atoms_k, 3]``);
    ``dipole`` is ``[n_structures, 3]`` and ``energy`` ``[n_structures]``.
    Forces come with every energy model. Units: e, e*Angstrom, eV, eV/Angstrom.
    ``stress=True`` (energy models) adds ``stress [n_structures, 3, 3]``, eV/Angstrom^3
    (ASE's sign, ``(1/V) dE/dstrain``), NaN for structures not periodic in all three
    directions; it runs eagerly (no runner, no CUDA graphs).
    The dipole (and its magnitude and spread) of a periodic structure is NaN: a
    cell's ``sum_i q_i r_i`` changes when an atom moves by a lattice vector, so it
    is not a property of the structure.
    A :class:`~equiprop.models.committee.Committee` gives the members' means and,
    from :func:`~equiprop.models.committee.spread`, ``energy_std``, ``dipole_std``
    ``[n_structures]``, ``charges_std`` and ``forces_std`` (one array ``[n_atoms_k]``
    per structure); it runs eagerly (no runner, no CUDA graphs).

    Applies :func:`equiprop.models.allocator.keep_freed_memory` (process-wide): without it,
    glibc maps and page-faults every large tensor anew, which made inference on a
    1,536-atom box 3.6x slower (docs/performance.md, step 14).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if stress and (runner is not None or Property.ENERGY not in model.targets):
        raise ValueError("stress needs an energy model, evaluated eagerly (no runner)")
    keep_freed_memory()
    structures = frames_to_graphs(frames, model.type_map, model.cutoff, source)
    reference = next(model.parameters())
    with_forces = Property.ENERGY in model.targets
    committee = isinstance(model, Committee)
    if stress:
        graphs = False
    if graphs is None and runner is None and reference.is_cuda and not committee:
        graphs = GraphedInference(model, batch_size)
    chunks: dict[str, list[np.ndarray]] = {}
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(structures), batch_size):
            batch = collate(structures[start : start + batch_size])
            if graphs and runner is None:  # graphs copy the CPU batch into their static inputs
                out = graphs(batch.to(dtype=reference.dtype))
            else:
                batch = batch.to(reference.device, reference.dtype)
                if runner is not None:
                    out = runner(batch)
                elif committee:
                    out = _committee_outputs(model, batch, with_forces, stress)
                else:
                    with torch.set_grad_enabled(with_forces):
                        out = model(batch, compute_forces=with_forces, compute_stress=stress)
            sizes = batch.n_atoms.tolist()
            for name, value in out.items():
                value = value.detach().cpu().numpy()
                per_atom = is_per_atom(name)
                chunks.setdefault(str(name), []).extend(np.split(value, np.cumsum(sizes)[:-1]) if per_atom else value)
    finally:
        model.train(was_training)
    out = {name: values if is_per_atom(name) else np.stack(values) for name, values in chunks.items()}
    periodic = np.array([bool(np.any(atoms.pbc)) for atoms in frames], dtype=bool)
    for name in DIPOLE_KEYS & out.keys():  # defined only up to how the atoms are wrapped in the cell
        out[name] = np.where(periodic.reshape(-1, *[1] * (out[name].ndim - 1)), np.nan, out[name])
    bulk = np.array([bool(np.all(atoms.pbc)) for atoms in frames], dtype=bool)
    for name in STRESS_KEYS & out.keys():  # no volume, no stress
        out[name] = np.where(bulk[:, None, None], out[name], np.nan)
    return out


def _committee_outputs(model: Committee, batch, with_forces: bool, stress: bool = False) -> dict:
    """Means keyed by Property, spreads by ``"<name>_std"``."""
    with torch.set_grad_enabled(with_forces):
        means, spreads = model.mean_and_spread(batch, compute_forces=with_forces, compute_stress=stress)
    return {**means, **spreads}
