"""Charges conserved per molecule (``--charge-spread formal``): formal charges, transfers, separated fragments."""

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms

from conftest import make_model
from equiprop.nn.charge_transfer import FormalCharges, transferred

KINDS = ["schnet", "so3net"]
DIMER = "data/dimer/h3o_h2o.xyz"  # H3O+ (atoms 0-3) then H2O (4-6)


def _all_pairs(atoms: Atoms):
    """Every pair once, ``edge_index [2, n_pairs]``, and their lengths."""
    i, j = np.triu_indices(len(atoms), k=1)
    lengths = np.linalg.norm(atoms.positions[j] - atoms.positions[i], axis=1)
    return torch.tensor(np.stack([i, j])), torch.tensor(lengths)


def _formal(atoms: Atoms, cutoff: float = 5.0) -> np.ndarray:
    formal = FormalCharges(["H", "O"], cutoff)
    types = torch.tensor([0 if s == "H" else 1 for s in atoms.get_chemical_symbols()])
    edges, lengths = _all_pairs(atoms)
    return formal(types, edges, lengths, pair_weight=1.0).numpy()


def test_formal_charges_of_water_and_its_ions():
    """H2O ~0 on every atom, H3O+ ~+1 on its O; a proton midway between two oxygens is shared evenly."""
    dimer = ase.io.read(DIMER)
    f = _formal(dimer)
    assert abs(f.sum() - 1.0) < 1e-12  # n_H - 2 n_O
    assert abs(f[0] - 1.0) < 0.03 and np.abs(f[1:4]).max() < 0.01 and np.abs(f[4:]).max() < 0.03
    zundel = Atoms("OHO", positions=[[0, 0, 0], [1.2, 0, 0], [2.4, 0, 0]])
    fz = _formal(zundel)
    assert abs(fz[0] - fz[2]) < 1e-12 and abs(fz[0] - (-1.5)) < 0.01  # each O: half a proton minus two


def test_a_pair_listed_both_ways_moves_the_same_charge():
    """Half weights over both directions equal full weights over one: the result cannot depend on the list."""
    dimer = ase.io.read(DIMER)
    edges, lengths = _all_pairs(dimer)
    both, twice = torch.cat([edges, edges.flip(0)], dim=1), torch.cat([lengths, lengths])
    u, switch = torch.randn(len(dimer), dtype=torch.float64), torch.rand(edges.shape[1], dtype=torch.float64)
    once = transferred(u, edges, switch, pair_weight=1.0)
    assert torch.allclose(transferred(u, both, torch.cat([switch, switch]), pair_weight=0.5), once)
    assert abs(float(once.sum())) < 1e-12 and float(once.abs().max()) > 1e-2
    formal = FormalCharges(["H", "O"], 5.0)
    types = torch.tensor([1, 0, 0, 0, 1, 0, 0])
    assert torch.allclose(formal(types, both, twice, 0.5), formal(types, edges, lengths, 1.0))


def _displaced(distance: float) -> Atoms:
    dimer = ase.io.read(DIMER)
    axis = dimer.positions[4] - dimer.positions[0]
    dimer.positions[4:] += (distance / np.linalg.norm(axis) - 1.0) * axis
    dimer.info["charge"] = 1
    return dimer


@pytest.mark.parametrize("kind", KINDS)
def test_a_separated_water_stays_neutral_beside_an_ion(kind):
    """Beyond the cutoff the water's charges sum to zero exactly (the uniform spread leaks there), and the
    charges change continuously as the water crosses the cutoff."""
    model = make_model(kind, torch.float64, charge_spread="formal", cutoff=3.0)
    far = model.predict([_displaced(7.0)])["charges"][0]
    assert abs(far[4:].sum()) < 1e-12 and abs(far[:4].sum() - 1.0) < 1e-12
    near = model.predict([_displaced(2.7)])["charges"][0]
    assert abs(near[4:].sum()) > 1e-3  # within reach, charge does move
    leaky = make_model(kind, torch.float64, charge_spread="uniform", cutoff=3.0).predict([_displaced(7.0)])
    assert abs(leaky["charges"][0][4:].sum()) > 1e-3
    # the closest H...O pair between the molecules crosses the 3 A cutoff somewhere in 3.5-4.5 A of O-O
    steps = np.linspace(3.5, 4.5, 201)
    water = np.array([model.predict([_displaced(d)])["charges"][0][4:].sum() for d in steps])
    assert abs(water[0]) > 1e-3 and abs(water[-1]) < 1e-12
    assert np.abs(np.diff(water)).max() < 0.1 * np.abs(water).max()  # no step: the switch brings it to zero


def test_many_hops_spread_a_molecules_excess_by_degree():
    """With many hops a connected molecule's excess is spread in proportion to 1 + degree; raw charges that
    already sum to zero come back nearly unchanged, which one hop does not give."""
    dimer = ase.io.read(DIMER)
    edges, lengths = _all_pairs(dimer)
    switch = FormalCharges(["H", "O"], 8.0).switch(lengths)  # every pair connected
    raw = torch.randn(len(dimer), dtype=torch.float64)
    degree = 1.0 + torch.zeros(len(dimer), dtype=torch.float64).index_add(0, edges[0], switch).index_add(0, edges[1], switch)
    spread = raw - transferred(raw, edges, switch, pair_weight=1.0, hops=400)
    assert torch.allclose(spread, degree / degree.sum() * raw.sum(), atol=1e-10)
    neutral = raw - raw.mean()
    assert torch.allclose(transferred(neutral, edges, switch, 1.0, hops=400), neutral, atol=1e-10)
    assert (transferred(neutral, edges, switch, 1.0, hops=1) - neutral).abs().max() > 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_formal_charges_are_features_and_checkpoints_from_before_load_without(kind, tmp_path):
    """A formal model's first interaction sees each atom's formal charge (the O of H3O+ ~+1, a water's ~0),
    the same numbers as the charges' own formal part; they change the prediction. A checkpoint written
    before the features existed (no ``formal_features`` in its hparams) rebuilds without them and
    predicts as when written."""
    import copy

    from equiprop.models.checkpoint import load_model, save_checkpoint

    model = make_model(kind, torch.float64, charge_spread="formal", cutoff=3.0)
    seen = []
    model.formal_embedding.register_forward_hook(lambda module, inputs, out: seen.append(inputs[0].detach()))
    near = _displaced(2.7)
    ref = model.predict([near])
    assert np.allclose(seen[-1].numpy(), _formal(near, cutoff=3.0), atol=1e-12)
    assert abs(float(seen[-1][0]) - 1.0) < 0.05 and abs(float(seen[-1][4])) < 0.05  # ion's O, water's O
    plain = copy.deepcopy(model)
    plain.formal_embedding = None
    assert abs(float(plain.predict([near])["energy"][0] - ref["energy"][0])) > 1e-4

    old = make_model(kind, torch.float64, charge_spread="formal", cutoff=3.0, formal_features=False)
    assert old.formal_embedding is None
    path = tmp_path / "old.pt"
    save_checkpoint(path, old, config={}, normalization={})
    payload = torch.load(path, weights_only=True)
    del payload["hparams"]["formal_features"]
    torch.save(payload, path)
    loaded = load_model(path)
    assert loaded.formal_embedding is None
    assert np.allclose(loaded.predict([near])["energy"], old.predict([near])["energy"], rtol=0, atol=1e-12)
