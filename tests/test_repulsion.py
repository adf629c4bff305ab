"""The ZBL floor (nn/repulsion.py): the published formula, its switch, its forces, and where it is silent."""

import numpy as np
import pytest
import torch
from ase import Atoms

from conftest import make_model, random_rotation, rotated, water_cluster

from equiprop.data import collate, frames_to_graphs
from equiprop.keys import Property
from equiprop.nn.repulsion import PairRepulsion, parse_pairs


def zbl(r: float, z1: int, z2: int) -> float:
    """The ZBL universal screened repulsion (eV), written out from Ziegler, Biersack and Littmark (1985)."""
    a = 0.46850 / (z1**0.23 + z2**0.23)
    x = r / a
    phi = 0.18175 * np.exp(-3.19980 * x) + 0.50986 * np.exp(-0.94229 * x) + 0.28022 * np.exp(-0.40290 * x) \
        + 0.02817 * np.exp(-0.20162 * x)
    return 14.399645 * z1 * z2 / r * phi


def energy(model, frames) -> torch.Tensor:
    return model(collate(frames_to_graphs(frames, model.type_map, model.cutoff)))[Property.ENERGY]


def pair_energy(repulsion: str, frames, **overrides) -> torch.Tensor:
    """The energy a model with ``repulsion`` adds to the same model without it."""
    with_floor = make_model("so3net", targets=["energy"], repulsion=repulsion, **overrides)
    without = make_model("so3net", targets=["energy"], **overrides)
    return energy(with_floor, frames) - energy(without, frames)


def test_the_full_formula_inside_nothing_beyond_and_only_for_named_pairs():
    dimers = [Atoms("OO", positions=[[0, 0, 0], [r, 0, 0]]) for r in (1.2, 1.5, 1.85, 2.3, 2.6)]
    added = pair_energy("O-O:2.3", dimers).tolist()
    np.testing.assert_allclose(added[:3], [zbl(r, 8, 8) for r in (1.2, 1.5, 1.85)], rtol=1e-10)
    assert added[3:] == [0.0, 0.0]
    water = water_cluster(2, seed=1)  # O-H bonds at 0.96 A, H-H at 1.5 A: untouched by an O-O floor
    assert pair_energy("O-O:2.3", [water]).abs().item() < 1e-12
    bonds = [water.get_distance(i, j) for i in range(len(water)) for j in range(i)
             if {water[i].symbol, water[j].symbol} == {"H", "O"} and water.get_distance(i, j) < 1.2]
    switched = [zbl(r, 1, 8) * 0.5 * (1 + np.cos(np.pi * (r - 0.8) / 0.4)) for r in bonds]  # cosine from 0.8 to 1.2 A
    assert len(bonds) == 4 and pair_energy("H-O:1.2", [water]).item() == pytest.approx(sum(switched), rel=1e-10)


def test_forces_are_the_gradient_through_the_switch():
    """Finite differences of the energy, in float64, for an O-O pair inside the cosine switch (1.9-2.3 A)."""
    model = make_model("so3net", targets=["energy"], repulsion="O-O:2.3")
    atoms = water_cluster(2, seed=3)
    oxygens = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "O"]
    shift = atoms.positions[oxygens[1]] - atoms.positions[oxygens[0]]
    move = 2.1 * shift / np.linalg.norm(shift) - shift  # put the oxygens 2.1 A apart, moving the second molecule
    second = [i for i in range(len(atoms)) if i >= len(atoms) // 2]
    atoms.positions[second] += move
    batch = collate(frames_to_graphs([atoms], model.type_map, model.cutoff))
    forces = model(batch, compute_forces=True)[Property.FORCES].detach().numpy()
    h = 1e-5
    for i in oxygens:
        for d in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, d] += h
            minus.positions[i, d] -= h
            numeric = -(energy(model, [plus]) - energy(model, [minus])).item() / (2 * h)
            assert forces[i, d] == pytest.approx(numeric, abs=1e-6)


def test_each_pair_counted_once_whatever_the_edge_order_and_in_a_batch():
    dimers = [Atoms("OOO", positions=[[0, 0, 0], [r, 0.1, 0], [0.3, 1.9, 0.2]]) for r in (1.6, 2.0)]
    model = make_model("so3net", targets=["energy"], repulsion="O-O:2.3")
    graphs = frames_to_graphs(dimers, model.type_map, model.cutoff)
    paired = collate(graphs)
    g = graphs[0]
    order = torch.arange(g.n_edges)
    order[:2] = order[:2].flip(0)  # the same edges, no longer in pairs
    shuffled = collate([type(g)(g.positions, g.types, g.edge_index[:, order], g.cell_shifts[order], g.cell,
                                g.total_charge), graphs[1]])
    assert paired.paired_edges and not shuffled.paired_edges
    torch.testing.assert_close(model(shuffled)[Property.ENERGY], model(paired)[Property.ENERGY], rtol=1e-12, atol=1e-12)
    singles = torch.cat([energy(model, [a]) for a in dimers])
    torch.testing.assert_close(energy(model, dimers), singles, rtol=1e-12, atol=1e-12)
    R = random_rotation(4)
    torch.testing.assert_close(energy(model, [rotated(a, R, shift=(1, 2, 3)) for a in dimers]), singles)


def test_bad_pairs_are_refused_at_construction():
    assert parse_pairs("O-O:2.3, H-O:1.0", ("H", "O")) == {("O", "O"): 2.3, ("H", "O"): 1.0}
    with pytest.raises(ValueError, match="expected PAIR:RADIUS"):
        parse_pairs("O-O=2.3", ("H", "O"))
    with pytest.raises(ValueError, match="element 'C' is not among"):
        parse_pairs("C-O:2.0", ("H", "O"))
    with pytest.raises(ValueError, match="exceeds the cutoff"):
        PairRepulsion("O-O:4.5", ("H", "O"), cutoff=4.0)
    with pytest.raises(ValueError, match="needs the energy target"):
        make_model("so3net", targets=["charges"], repulsion="O-O:2.3")


def test_a_checkpoint_keeps_the_floor(tmp_path):
    from equiprop.models.checkpoint import load_model, save_checkpoint

    model = make_model("so3net", targets=["energy"], repulsion="O-O:2.3")
    save_checkpoint(tmp_path / "m.pt", model, {}, {})
    loaded = load_model(tmp_path / "m.pt")
    dimer = [Atoms("OO", positions=[[0, 0, 0], [1.7, 0, 0]])]
    assert loaded.repulsion is not None
    torch.testing.assert_close(energy(loaded.double(), dimer), energy(model, dimer))
