"""Whole-model physics: symmetry, batching, periodicity, charge conservation, forces, smoothness."""

import numpy as np
import pytest
import torch
from ase.build import make_supercell

from conftest import assert_close, make_model, periodic_water, random_rotation, rotated, water_cluster

from equiprop.data import collate, frames_to_graphs

KINDS = ["schnet", "so3net"]
#: the models and SO3Net with l = 2 harmonics on l <= 1 features (``sh_lmax > lmax``: other couplings)
VARIANTS = [("schnet", {}), ("so3net", {}), ("so3net", {"lmax": 1, "sh_lmax": 2})]


@pytest.mark.parametrize("kind", KINDS)
def test_rotation_and_translation(kind, dtype):
    model = make_model(kind, dtype)
    frames = [water_cluster(3, seed=1), periodic_water(seed=2)]
    for seed, frame in enumerate(frames):
        R = random_rotation(seed)
        ref = model.predict([frame])
        new = model.predict([rotated(frame, R, shift=(1.7, -3.2, 0.4))])
        assert_close(new["charges"][0], ref["charges"][0], dtype)
        assert_close(new["energy"], ref["energy"], dtype)
        if frame.pbc.any():  # a cell's dipole is not defined (test_a_periodic_dipole_is_not_reported)
            assert np.isnan(new["dipole"]).all() and np.isnan(ref["dipole"]).all()
        else:
            assert_close(new["dipole"], ref["dipole"] @ R.T, dtype)
        assert_close(new["forces"][0], ref["forces"][0] @ R.T, dtype)


def test_a_periodic_dipole_is_not_reported():
    """Moving an atom by a lattice vector changes ``sum q_i r_i`` but not the structure: no dipole for cells."""
    from ase.calculators.calculator import PropertyNotImplementedError

    from equiprop.calculator import EquipropCalculator
    from equiprop.data.labels import read_label
    from equiprop.errors import InputError
    from equiprop.keys import Property

    model = make_model("so3net", torch.float64)
    cell = periodic_water(seed=2)
    moved = cell.copy()
    moved.positions[0] += cell.cell[0]
    raw = [model(collate(frames_to_graphs([a], model.type_map, model.cutoff)))[Property.DIPOLE] for a in (cell, moved)]
    assert (raw[0] - raw[1]).abs().max() > 1e-3  # what a reported dipole would do
    ref, new = model.predict([cell]), model.predict([moved])
    assert_close(new["energy"], ref["energy"], torch.float64)
    assert np.isnan(new["dipole"]).all() and not np.isnan(model.predict([water_cluster(2)])["dipole"]).any()
    moved.calc = EquipropCalculator(model)
    moved.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError):
        moved.get_dipole_moment()
    cell.info["dft_dipole"] = np.zeros(3)
    with pytest.raises(InputError, match="structure 5 of cell.xyz: a dipole label 'dft_dipole' on a periodic"):
        read_label(cell, Property.DIPOLE, "dft_dipole", 5, "cell.xyz")


@pytest.mark.parametrize("kind", KINDS)
def test_permutation(kind, dtype):
    model = make_model(kind, dtype)
    frame = water_cluster(3, seed=3)
    perm = np.random.default_rng(0).permutation(len(frame))
    ref, new = model.predict([frame]), model.predict([frame[perm]])
    assert_close(new["charges"][0], ref["charges"][0][perm], dtype)
    assert_close(new["forces"][0], ref["forces"][0][perm], dtype)
    assert_close(new["energy"], ref["energy"], dtype)
    assert_close(new["dipole"], ref["dipole"], dtype)


@pytest.mark.parametrize("lmax, sh_lmax", [(1, None), (3, None), (1, 2)])
def test_so3net_any_lmax_is_equivariant(lmax, sh_lmax):
    model = make_model("so3net", torch.float64, lmax=lmax, sh_lmax=sh_lmax)
    frame, R = water_cluster(2, seed=4), random_rotation(5)
    ref, new = model.predict([frame]), model.predict([rotated(frame, R)])
    assert_close(new["dipole"], ref["dipole"] @ R.T, torch.float64)
    assert_close(new["forces"][0], ref["forces"][0] @ R.T, torch.float64)
    assert_close(new["energy"], ref["energy"], torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_equals_singles(kind, dtype):
    model = make_model(kind, dtype)
    frames = [water_cluster(n, seed=n) for n in (1, 2, 4)] + [periodic_water(seed=7)]
    batched = model.predict(frames, batch_size=len(frames))
    for k, frame in enumerate(frames):
        single = model.predict([frame])
        assert_close(batched["energy"][k], single["energy"][0], dtype)
        np.testing.assert_equal(np.isnan(batched["dipole"][k]), bool(frame.pbc.any()))  # NaN for the cell
        if not frame.pbc.any():
            assert_close(batched["dipole"][k], single["dipole"][0], dtype)
        assert_close(batched["charges"][k], single["charges"][0], dtype)
        assert_close(batched["forces"][k], single["forces"][0], dtype)


@pytest.mark.parametrize("kind, sizes", VARIANTS)
def test_paired_edges_shortcut_equals_the_generic_path(kind, sizes):
    """Radial functions once per pair (paired batch) give what every edge on its own gives."""
    from dataclasses import replace

    from equiprop.data import collate, frames_to_graphs
    from equiprop.keys import Property

    model = make_model(kind, torch.float64, **sizes)
    frames = [water_cluster(3, seed=9), periodic_water(seed=10)]
    batch = collate(frames_to_graphs(frames, model.type_map, model.cutoff))
    assert batch.paired_edges
    perm = torch.randperm(batch.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    generic = replace(batch, paired_edges=False, edge_index=batch.edge_index[:, perm], cell_shifts=batch.cell_shifts[perm])
    fast, slow = model(batch, compute_forces=True), model(generic, compute_forces=True)
    for key in (Property.CHARGES, Property.DIPOLE, Property.ENERGY, Property.FORCES):
        assert fast[key].abs().max() > 0
        assert_close(fast[key].detach(), slow[key].detach(), torch.float64)


@pytest.mark.parametrize("kind", KINDS)
def test_periodic_equals_supercell(kind):
    model = make_model(kind, torch.float64, targets=["charges", "energy"])
    cell = periodic_water(seed=8)
    supercell = make_supercell(cell, np.diag([2, 1, 2]))
    ref, big = model.predict([cell]), model.predict([supercell])
    n = len(cell)
    assert_close(big["energy"][0] / len(supercell), ref["energy"][0] / n, torch.float64)
    for copy in range(4):  # make_supercell keeps the atom order within each copy
        assert_close(big["charges"][0][copy * n : (copy + 1) * n], ref["charges"][0], torch.float64)
        assert_close(big["forces"][0][copy * n : (copy + 1) * n], ref["forces"][0], torch.float64)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spread", ["uniform", "learned", "formal"])
@pytest.mark.parametrize("total", [0.0, 1.0, -2.0])
def test_charge_conservation(kind, spread, total, dtype):
    model = make_model(kind, dtype, charge_spread=spread)
    frames = [water_cluster(n, seed=n) for n in (1, 3, 5)]
    for frame in frames:
        frame.info["charge"] = total
    charges = model.predict(frames)["charges"]
    for q in charges:
        assert abs(q.astype(np.float64).sum() - total) < 1e-6


def test_learned_spread_puts_the_excess_by_weight():
    """The excess goes to each atom in proportion to its weight: none to an atom of weight 0."""
    from equiprop.nn import constrain_charges

    raw = torch.tensor([0.1, -0.2, 0.3, 0.0, 0.5])
    structure, n_atoms, total = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([3, 2]), torch.tensor([1.0, -1.0])
    weights = torch.tensor([1.0, 3.0, 0.0, 2.0, 2.0])
    q = constrain_charges(raw, structure, total, n_atoms, weights)
    assert torch.allclose(q, raw + torch.tensor([0.2, 0.6, 0.0, -0.75, -0.75]))  # excess 0.8 and -1.5
    even = constrain_charges(raw, structure, total, n_atoms)
    assert torch.allclose(even - raw, torch.tensor([0.8 / 3] * 3 + [-0.75] * 2))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spread", ["learned", "formal"])
def test_charge_spreads_are_invariant_batched_and_differentiable(kind, spread):
    """With learned weights or transfers (random here) the charges still rotate, batch and give finite-difference
    forces through the electrostatic energy; and they differ from the even spread."""
    import copy

    model = make_model(kind, torch.float64, charge_spread=spread, electrostatics="coulomb",
                       targets=["charges", "dipole", "energy"])
    frames = [water_cluster(3, seed=4), water_cluster(2, seed=5)]
    for frame, total in zip(frames, (1.0, -1.0)):
        frame.info["charge"] = total
    ref = model.predict(frames)
    turned = model.predict([rotated(f, random_rotation(3)) for f in frames])
    singles = [model.predict([f]) for f in frames]
    for k in range(2):
        assert_close(turned["charges"][k], ref["charges"][k], torch.float64)
        assert_close(turned["energy"][k], ref["energy"][k], torch.float64)
        assert_close(singles[k]["charges"][0], ref["charges"][k], torch.float64)
        assert_close(singles[k]["forces"][0], ref["forces"][k], torch.float64)
    even = copy.deepcopy(model)
    even.charge_spread = even.formal_charges = even.formal_embedding = None  # the formal charges as features go too
    assert np.abs(even.predict(frames)["charges"][0] - ref["charges"][0]).max() > 1e-3
    frame, h = frames[0], 1e-5
    moved = frame.copy()
    moved.positions[1, 2] += h
    back = frame.copy()
    back.positions[1, 2] -= h
    numeric = -(_energy(model, moved) - _energy(model, back)) / (2 * h)
    assert abs(numeric - ref["forces"][0][1, 2]) < 1e-6


def test_unconstrained_charges_are_free():
    """Without the constraint the sum is whatever the network says (the test above can fail)."""
    model = make_model("schnet", torch.float64, charge_constraint=False)
    q = model.predict([water_cluster(2)])["charges"][0]
    assert abs(q.sum()) > 1e-6


def _energy(model, frame):
    return float(model.predict([frame])["energy"][0])


@pytest.mark.parametrize("kind, sizes", VARIANTS)
def test_forces_match_finite_differences(kind, sizes):
    model = make_model(kind, torch.float64, **sizes)
    for frame in (water_cluster(2, seed=9), periodic_water(seed=10)):
        forces = model.predict([frame])["forces"][0]
        h = 1e-5
        rng = np.random.default_rng(0)
        for atom, axis in zip(rng.choice(len(frame), 4, replace=False), rng.integers(0, 3, 4)):
            plus, minus = frame.copy(), frame.copy()
            plus.positions[atom, axis] += h
            minus.positions[atom, axis] -= h
            numeric = -(_energy(model, plus) - _energy(model, minus)) / (2 * h)
            assert abs(numeric - forces[atom, axis]) < 1e-6 * max(1.0, abs(numeric))


@pytest.mark.parametrize("kind", KINDS)
def test_functional_forces_equal_autograd_forces(kind):
    """``outputs`` as a function of the positions: ``torch.func.grad`` (the compiled path's forces) = ``forward``'s."""
    from equiprop.data import collate, frames_to_graphs
    from equiprop.keys import Property

    model = make_model(kind, torch.float64).train()
    batch = collate(frames_to_graphs([water_cluster(2, seed=11), periodic_water(seed=12)], model.type_map, model.cutoff))
    batch = batch.to("cpu", torch.float64)
    reference = model(batch, compute_forces=True)[Property.FORCES]
    energy = lambda positions: model.outputs(batch, positions)[Property.ENERGY].sum()  # noqa: E731
    assert torch.allclose(-torch.func.grad(energy)(batch.positions), reference, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_energy_smooth_across_cutoff(kind):
    """Pull one water away from another until the closest pair crosses the cutoff.

    Right at the crossing, energy and forces must not jump; once apart, the two
    molecules must not interact at all.
    """
    model = make_model(kind, torch.float64, targets=["energy"])
    pair = water_cluster(2, seed=11, spacing=2.8)
    first, second = np.arange(3), np.arange(3, 6)
    direction = pair.positions[second].mean(0) - pair.positions[first].mean(0)
    direction /= np.linalg.norm(direction)

    def moved(step):
        frame = pair.copy()
        frame.positions[second] += step * direction
        return frame

    def gap(step):
        positions = moved(step).positions
        return np.linalg.norm(positions[first][:, None] - positions[second][None], axis=-1).min()

    low, high = 0.0, 3.0  # bisect for the step at which the closest pair is at the cutoff
    assert gap(low) < model.cutoff < gap(high)
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if gap(mid) < model.cutoff else (low, mid)
    inside, outside = model.predict([moved(low - 1e-7)]), model.predict([moved(high + 1e-7)])
    assert abs(inside["energy"][0] - outside["energy"][0]) < 1e-10
    assert np.abs(inside["forces"][0] - outside["forces"][0]).max() < 1e-6

    def net_force(step):  # force between the molecules
        return np.linalg.norm(model.predict([moved(step)])["forces"][0][second].sum(0))

    far = [model.predict([moved(high + d)])["energy"][0] for d in (0.01, 0.5, 2.0)]
    close = model.predict([moved(0.0)])["energy"][0]
    assert abs(close - far[0]) > 1e-6 and net_force(0.0) > 1e-6  # they interact inside the cutoff...
    assert np.ptp(far) < 1e-12 and net_force(high + 0.01) < 1e-12  # ...and not beyond it


def test_large_structures_checkpointing_gives_the_same_forces(monkeypatch):
    """Big batches recompute each interaction in the backward pass: same numbers, less memory."""
    import equiprop.models.so3net as so3net

    model = make_model("so3net", torch.float64)
    frame = periodic_water(seed=12)
    plain = model.predict([frame])
    monkeypatch.setattr(so3net, "CHECKPOINT_ATOMS", 1)
    saved = model.predict([frame])
    assert_close(saved["forces"][0], plain["forces"][0], torch.float64)
    assert_close(saved["energy"], plain["energy"], torch.float64)


@pytest.mark.parametrize("kind", ["schnet", "so3net"])
def test_charge_references_are_fitted_and_added_per_unit_of_total_charge(kind):
    """With the energy as the only target the total charge enters through the charge references alone."""
    model = make_model(kind, targets=["energy"])
    frames = []
    for total in (0, 1, -1, 2):
        frame = water_cluster(2, seed=5)
        frame.info["charge"] = total
        frames.append(frame)
    energies = model.predict(frames)["energy"]
    assert energies[1:] - energies[0] == pytest.approx([0.7, 1.9, 1.4], abs=1e-10)
    labels = np.array([-10.0, -17.0, -2.0, -24.0])  # eV: +1 costs -7 eV, -1 +8 eV (the +2 frame on the line)
    model.fit_energy_references(frames, labels)
    assert model.charge_energies.tolist() == pytest.approx([-7.0, 8.0])
