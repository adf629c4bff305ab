"""Electrostatics from the learned charges: Coulomb's law beyond the cutoff, invariances, forces, batches, charges."""

import numpy as np
import pytest
import torch
from ase import Atoms

import equiprop
from conftest import SMALL, assert_close, make_model, random_rotation, water_cluster
from equiprop import datasets
from equiprop.cli.main import main
from equiprop.nn.electrostatics import DampedCoulomb
from equiprop.nn.repulsion import COULOMB


def test_two_point_charges_follow_coulombs_law():
    coulomb = DampedCoulomb(sigma=1.0)
    charges = torch.tensor([1.0, -0.5, 0.3, -0.3], dtype=torch.float64)
    positions = torch.tensor([[0, 0, 0], [8.0, 0, 0], [0, 0, 0], [0, 0, 12.0]], dtype=torch.float64)
    structure = torch.tensor([0, 0, 1, 1])  # two structures: no pair across them
    energy = coulomb(charges, positions, structure, 2)
    np.testing.assert_allclose(energy.numpy(), [COULOMB * -0.5 / 8.0, COULOMB * -0.09 / 12.0], rtol=1e-12)
    close = coulomb(charges[:2], torch.tensor([[0, 0, 0], [1e-4, 0, 0]], dtype=torch.float64), structure[:2], 1)
    assert torch.isfinite(close).all()  # damped: finite where two Gaussian charges overlap


def _separated(distance: float) -> Atoms:
    """Two waters ``distance`` apart along x, far beyond the 3 A cutoff: each one's charges see only itself."""
    first, second = water_cluster(1, seed=1), water_cluster(1, seed=2)
    second.positions += (distance, 0.0, 0.0)
    return first + second


def test_energy_beyond_the_cutoff_is_the_coulomb_energy_of_the_charges():
    model = make_model("so3net", electrostatics="coulomb")
    plain = make_model("so3net")  # the same weights (same seed), no electrostatics
    far, farther = _separated(20.0), _separated(40.0)
    out = {d: model.predict([a]) for d, a in ((20, far), (40, farther))}
    np.testing.assert_allclose(out[20]["charges"][0], out[40]["charges"][0], atol=1e-12)
    q, r = out[20]["charges"][0], far.positions
    pair = sum(COULOMB * q[i] * q[j] / np.linalg.norm(r[i] - r[j]) for i in range(3) for j in range(3, 6))
    q, r = out[40]["charges"][0], farther.positions
    pair_far = sum(COULOMB * q[i] * q[j] / np.linalg.norm(r[i] - r[j]) for i in range(3) for j in range(3, 6))
    assert abs(pair) > 1e-4  # the molecules' dipoles interact
    assert out[20]["energy"][0] - out[40]["energy"][0] == pytest.approx(pair - pair_far, abs=1e-10)
    assert plain.predict([far])["energy"][0] == pytest.approx(plain.predict([farther])["energy"][0], abs=1e-10)


@pytest.mark.parametrize("kind", ["so3net", "schnet"])
def test_invariant_differentiable_and_batched_with_electrostatics(kind, dtype):
    model = make_model(kind, dtype=dtype, electrostatics="coulomb")
    atoms, other = water_cluster(3, seed=3), water_cluster(2, seed=4)
    other.info["charge"] = 1  # charged and neutral structures in one batch
    out = model.predict([atoms])
    rotation = random_rotation(2)
    moved = atoms[np.random.default_rng(3).permutation(len(atoms))]
    moved.positions = moved.positions @ rotation.T + (5.0, -3.0, 1.0)
    assert_close(model.predict([moved])["energy"], out["energy"], dtype)
    together = model.predict([other, atoms])
    assert_close(together["energy"][1], out["energy"][0], dtype)
    assert_close(together["energy"][0], model.predict([other])["energy"][0], dtype)
    assert together["charges"][0].sum() == pytest.approx(1.0, abs=1e-5)
    if dtype == torch.float64:  # forces are minus the gradient: central differences
        atoms.calc = equiprop.EquipropCalculator(model)
        forces, delta = atoms.get_forces(), 1e-5
        for k in (0, 4, 8):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions.reshape(-1)[k] += delta
            minus.positions.reshape(-1)[k] -= delta
            plus.calc = minus.calc = equiprop.EquipropCalculator(model)
            numeric = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * delta)
            assert forces.reshape(-1)[k] == pytest.approx(numeric, abs=1e-7)


def test_a_cell_is_refused_and_the_flag_trains(tmp_path):
    model = make_model("so3net", electrostatics="coulomb")
    box = water_cluster(2, seed=5)
    box.set_cell([12.0, 12.0, 12.0])
    box.pbc = True
    with pytest.raises(ValueError, match="periodic"):
        model.predict([box])
    with pytest.raises(ValueError, match="choose from"):
        make_model("so3net", electrostatics="ewald")
    import ase.io

    data = tmp_path / "water.xyz"
    ase.io.write(data, datasets.water_pbe0()[:24])
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--electrostatics", "coulomb", "--epochs", "1", "--out", str(out),
                 *SMALL]) == 0
    reloaded = equiprop.load_model(out / "best.pt")
    assert reloaded.electrostatics is not None
    assert main(["train", "--data", str(data), "--electrostatics", "ewald", "--epochs", "1",
                 "--out", str(tmp_path / "bad"), *SMALL]) == 2
