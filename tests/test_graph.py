"""Structures to graphs: neighbour lists against ASE, the type map, batching, labels."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from conftest import periodic_water, water_cluster
from equiprop.data import LabelKeys, TypeMap, atoms_to_graph, collate, read_labels
from equiprop.keys import Property
from equiprop.nn import edge_vectors
from equiprop.models.normalization import charge_columns, element_counts, fit_element_energies, fit_references

TYPES = TypeMap(("H", "O"))


def edge_set(i, j, shifts):
    return {(int(a), int(b), *map(int, np.round(s))) for a, b, s in zip(i, j, shifts)}


def small_cell_mixed_pbc():
    atoms = Atoms("OH2", positions=[[0.1, 0.2, 0.3], [0.9, 0.1, 0.2], [0.2, 1.0, 0.1]], cell=[[2.1, 0, 0], [0.3, 1.9, 0], [0, 0, 5.0]])
    atoms.pbc = [True, True, False]
    return atoms


@pytest.mark.parametrize("make", [lambda: water_cluster(4), periodic_water, small_cell_mixed_pbc])
def test_neighbour_list_matches_ase(make):
    atoms, cutoff = make(), 3.0
    graph = atoms_to_graph(atoms, TYPES, cutoff)
    ours = edge_set(graph.edge_index[0], graph.edge_index[1], graph.cell_shifts.numpy())
    theirs = edge_set(*ase_neighbor_list("ijS", atoms, cutoff))
    assert ours == theirs and len(ours) == graph.n_edges > 0
    assert graph.paired_edges  # edge e + n/2 reverses edge e, periodic images included
    batch = collate([graph])
    vectors = edge_vectors(batch.positions, batch.edge_index, batch.cell_shifts, batch.cell, batch.structure)
    _, _, distances = ase_neighbor_list("ijd", atoms, cutoff)
    assert np.allclose(np.sort(vectors.norm(dim=1).numpy()), np.sort(distances), atol=1e-12)


def test_type_map_is_explicit_and_ordered():
    hydrogen_only = Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])
    assert TypeMap(("O", "H")).types(hydrogen_only.numbers).tolist() == [1, 1]
    assert TypeMap(("H", "O")).types(hydrogen_only.numbers).tolist() == [0, 0]
    assert TypeMap(("O", "H")).types(water_cluster(1).numbers).tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match="twice"):
        TypeMap(("H", "H"))
    with pytest.raises(ValueError, match="not chemical symbols"):
        TypeMap(("H", "Xx"))


def test_collate_offsets_and_structure_ids():
    graphs = [atoms_to_graph(water_cluster(n, seed=n), TYPES, 3.0) for n in (1, 3, 2)]
    batch = collate(graphs)
    assert batch.n_structures == 3 and batch.n_atoms.tolist() == [3, 9, 6]
    assert batch.structure.tolist() == [0] * 3 + [1] * 9 + [2] * 6
    assert batch.paired_edges  # first halves of all graphs, then their second halves
    half, start = batch.edge_index.shape[1] // 2, 0
    for k, g in enumerate(graphs):
        h = g.n_edges // 2
        edges = torch.cat([batch.edge_index[:, start : start + h], batch.edge_index[:, half + start : half + start + h]], 1)
        assert torch.equal(edges - int(batch.n_atoms[:k].sum()), g.edge_index)
        assert torch.equal(batch.structure[edges], torch.full_like(edges, k))  # no edge crosses structures
        start += h
    assert 2 * start == batch.edge_index.shape[1]
    assert torch.equal(batch.edge_index[:, half:], batch.edge_index[:, :half].flip(0))
    assert torch.equal(batch.cell_shifts[half:], -batch.cell_shifts[:half])
    assert batch.to(dtype=torch.float32).positions.dtype == torch.float32
    assert batch.to(dtype=torch.float32).types.dtype == torch.int64


def test_read_labels_keys_and_calculator():
    frame = water_cluster(1)
    frame.info["my_energy"], frame.arrays["my_q"] = -2080.5, np.array([-0.3, 0.15, 0.15])
    keys = LabelKeys(energy="my_energy", charges="my_q")
    labels = read_labels([frame], [Property.ENERGY, Property.CHARGES], keys)
    assert labels[Property.ENERGY][0] == -2080.5 and labels[Property.CHARGES][0].tolist() == [-0.3, 0.15, 0.15]
    from ase.calculators.singlepoint import SinglePointCalculator

    bare = water_cluster(1)
    bare.calc = SinglePointCalculator(bare, energy=-1.0, forces=np.ones((3, 3)))
    labels = read_labels([bare], [Property.ENERGY, Property.FORCES])
    assert labels[Property.ENERGY][0] == -1.0 and labels[Property.FORCES][0].shape == (3, 3)


def test_fit_element_energies():
    references = np.array([-13.6, -2041.0])
    frames = [Atoms("H2"), Atoms("O2"), Atoms("H2O"), Atoms("HO")]
    counts = element_counts(frames, TYPES)
    assert counts.tolist() == [[2, 0], [0, 2], [2, 1], [1, 1]]
    assert np.allclose(fit_element_energies(counts, counts @ references), references)
    water_only = np.array([[2, 1], [4, 2], [6, 3]])  # rank deficient: only 2 e_H + e_O is defined
    fitted = fit_element_energies(water_only, water_only @ references)
    assert np.isclose(2 * fitted[0] + fitted[1], 2 * references[0] + references[1])
    assert np.linalg.norm(fitted) < np.linalg.norm(references)  # the minimum-norm solution


def test_charge_references_take_each_ions_offset_with_the_neutral_gauge():
    """H3O+ and OH- clusters differ from water by one hydrogen each (n_H - 2 n_O = Q), so no element
    energies hold both offsets; the charge references do, and the elements keep the neutral fit."""
    e_h, e_o, plus, minus = -13.6, -2041.0, -7.2, 15.9  # eV; made-up offsets of one sign each
    counts = np.array([[2 * n + q, n] for n in (1, 2, 3, 4) for q in (0, 1, -1)])  # [n_frames, (H, O)]
    charge = counts[:, 0] - 2 * counts[:, 1]
    energies = counts @ [e_h, e_o] + charge_columns(charge) @ [plus, minus]
    elements, charges = fit_references(counts, charge, energies)
    neutral_only = fit_element_energies(counts[charge == 0], energies[charge == 0])
    assert np.allclose(elements, neutral_only)  # the gauge: the neutral frames' minimum-norm fit
    assert np.allclose(counts @ elements + charge_columns(charge) @ charges, energies)  # every frame exact
    assert np.allclose(charges, [plus + e_h - elements[0], minus - e_h + elements[0]])  # up to the H gauge
    alone, no_charges = fit_references(counts[charge == 0], charge[charge == 0], energies[charge == 0])
    assert np.allclose(alone, neutral_only) and np.allclose(no_charges, 0.0)


def test_unpaired_graphs_batch_without_the_pair_flag():
    from dataclasses import replace

    graph = atoms_to_graph(water_cluster(2), TYPES, 3.0)
    order = torch.arange(graph.n_edges)
    order[:2] = torch.tensor([1, 0])  # two edges of the first half swapped: no longer opposite their reverses
    shuffled = replace(graph, edge_index=graph.edge_index[:, order], cell_shifts=graph.cell_shifts[order])
    assert not shuffled.paired_edges and not collate([graph, shuffled]).paired_edges
    assert collate([graph, graph]).paired_edges
