"""Stress of periodic cells: the strain derivative of the energy, checked against physics."""

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.emt import EMT
from ase.calculators.fd import FiniteDifferenceCalculator
from ase.stress import voigt_6_to_full_3x3_stress

import equiprop
from conftest import make_model, periodic_water, water_cluster
from equiprop.cli.main import main
from equiprop.data.labels import read_label
from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.models.committee import Committee


def _energy_model(kind: str, seed: int = 0, **overrides):
    return make_model(kind, seed=seed, targets=["charges", "dipole", "energy"], **overrides)


@pytest.mark.parametrize("kind", ["schnet", "so3net"])
def test_stress_is_the_finite_difference_strain_derivative(kind):
    atoms = periodic_water(seed=1)
    atoms.calc = equiprop.EquipropCalculator(_energy_model(kind))
    stress = atoms.get_stress()  # Voigt, eV/A^3
    reference = FiniteDifferenceCalculator(equiprop.EquipropCalculator(_energy_model(kind)), eps_strain=1e-5)
    numerical = reference.get_stress(atoms.copy())
    assert np.abs(stress).max() > 1e-4  # not trivially zero
    np.testing.assert_allclose(stress, numerical, rtol=0, atol=1e-6 * np.abs(numerical).max() + 1e-10)


def test_stress_with_a_repulsion_floor_is_its_strain_derivative():
    atoms = periodic_water(seed=2)
    atoms.positions[1] = atoms.positions[0] + [2.0, 0.0, 0.0]  # an O-O pair inside the floor's 2.3 A
    model = make_model("so3net", targets=["energy"], repulsion="O-O:2.3")
    atoms.calc = equiprop.EquipropCalculator(model)
    numerical = FiniteDifferenceCalculator(equiprop.EquipropCalculator(model), eps_strain=1e-5).get_stress(atoms.copy())
    np.testing.assert_allclose(atoms.get_stress(), numerical, atol=1e-6 * np.abs(numerical).max() + 1e-10)


def test_stress_rotates_as_a_tensor_and_ignores_translation():
    model = _energy_model("so3net")
    atoms = periodic_water(seed=3)
    rotation = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64))[0]
    rotation = rotation.numpy() * np.sign(np.linalg.det(rotation.numpy()))
    turned = atoms.copy()
    turned.positions = atoms.positions @ rotation.T
    turned.cell = atoms.cell.array @ rotation.T
    moved = atoms.copy()
    moved.positions += [0.7, -1.3, 2.1]
    s, s_turned, s_moved = (model.predict([a], stress=True)["stress"][0] for a in (atoms, turned, moved))
    np.testing.assert_allclose(s_turned, rotation @ s @ rotation.T, atol=1e-10)
    np.testing.assert_allclose(s_moved, s, atol=1e-10)
    np.testing.assert_allclose(s, s.T, atol=1e-12)


def test_batched_stress_equals_singles_and_open_structures_get_nan():
    model = _energy_model("schnet")
    frames = [periodic_water(seed=5), water_cluster(3, seed=6), periodic_water(seed=7)]
    together = model.predict(frames, batch_size=3, stress=True)["stress"]
    assert np.isnan(together[1]).all()
    for k in (0, 2):
        np.testing.assert_allclose(together[k], model.predict([frames[k]], stress=True)["stress"][0], atol=1e-12)


def test_committee_stress_is_the_members_mean():
    members = [_energy_model("so3net", seed=s) for s in (0, 1)]
    atoms = periodic_water(seed=8)
    out = Committee(members).predict([atoms], stress=True)
    mean = np.mean([m.predict([atoms], stress=True)["stress"][0] for m in members], axis=0)
    np.testing.assert_allclose(out["stress"][0], mean, atol=1e-10)
    assert out["stress_std"][0].shape == (3, 3) and out["stress_std"][0].max() > 0


def test_stress_is_refused_where_it_is_not_defined():
    cluster = water_cluster(2)
    cluster.calc = equiprop.EquipropCalculator(_energy_model("schnet"))
    with pytest.raises(PropertyNotImplementedError, match="periodic in all three"):
        cluster.get_stress()
    with pytest.raises(ValueError, match="energy model"):
        make_model("schnet", targets=["charges"]).predict([periodic_water()], stress=True)
    assert equiprop.SchNet(elements=["H", "O"], targets=["stress"]).targets == (Property.ENERGY, Property.STRESS)


def _emt_boxes(n: int, seed: int = 0) -> list:
    """Periodic water boxes labelled by ASE's EMT (energy, forces, stress): a cheap stand-in for DFT labels."""
    frames = []
    for k in range(n):
        box = periodic_water(seed=seed + k)
        box.calc = EMT()
        box.info["dft_energy"] = box.get_potential_energy()
        box.arrays["dft_forces"] = box.get_forces()
        box.info["dft_stress"] = box.get_stress()  # Voigt: read as 3 x 3
        box.calc = None
        frames.append(box)
    return frames


def test_stress_labels_are_read_from_voigt_or_3x3_and_need_a_cell():
    box = _emt_boxes(1)[0]
    voigt = read_label(box, Property.STRESS, "dft_stress", 0)
    box.info["full"] = voigt_6_to_full_3x3_stress(box.info["dft_stress"])
    np.testing.assert_array_equal(read_label(box, Property.STRESS, "full", 0), voigt)
    assert voigt.shape == (3, 3) and voigt[1, 2] == box.info["dft_stress"][3]
    slab = box.copy()
    slab.pbc = [True, True, False]
    with pytest.raises(InputError, match="structure 4: a stress target needs cells periodic in x, y and z"):
        read_label(slab, Property.STRESS, "dft_stress", 4)


def test_training_on_stress_lowers_the_stress_error(tmp_path):
    data = tmp_path / "boxes.xyz"
    ase.io.write(data, _emt_boxes(20), format="extxyz")
    common = ["train", "--model", "schnet", "--data", str(data), "--targets", "energy,forces,stress", "--features", "8",
              "--interactions", "1", "--n-rbf", "8", "--cutoff", "3.0", "--batch-size", "4", "--ema-decay", "0"]
    assert main([*common, "--epochs", "1", "--lr", "1e-9", "--out", str(tmp_path / "untrained")]) == 0
    assert main([*common, "--epochs", "25", "--lr", "5e-3", "--out", str(tmp_path / "trained")]) == 0
    before, after = (json.loads((tmp_path / run / "test_metrics.json").read_text())["stress"]["mae"]
                     for run in ("untrained", "trained"))
    assert after < 0.7 * before, (before, after)
    model = equiprop.load_model(tmp_path / "trained" / "best.pt")
    frames = ase.io.read(data, ":")
    out = model.predict(frames, stress=True)["stress"]
    assert np.isfinite(out).all() and out.shape == (20, 3, 3)
