"""First-order induction beyond the cutoff (nn/induction.py): the ion-induced-dipole law, the field of a
dipole, nothing from close neighbours, and a polarizable model's invariances, forces and batches."""

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms

from conftest import assert_close, assert_forces_are_minus_the_gradient, make_model, random_rotation, water_cluster
from equiprop.errors import InputError
from equiprop.nn.induction import Induction
from equiprop.nn.repulsion import COULOMB
from equiprop.train.config import TrainConfig
from equiprop.train.prepare import prepare_data

TYPES = torch.tensor([0, 1])
ONE = torch.tensor([0, 0])


def _pair(distance, charges=(1.0, 0.0), dipoles=None):
    positions = torch.tensor([[0.0, 0.0, 0.0], [distance, 0.0, 0.0]], dtype=torch.float64)
    dipoles = None if dipoles is None else torch.tensor(dipoles, dtype=torch.float64)
    return torch.tensor(charges, dtype=torch.float64), positions, dipoles


@pytest.mark.parametrize("distance", [7.0, 12.0])
def test_a_charge_induces_alpha_q_over_r2_and_binds_by_half_alpha_q2_over_r4(distance):
    induction = Induction(2, cutoff=5.0).double()
    charges, positions, _ = _pair(distance, charges=(-1.0, 0.0))
    with torch.no_grad():
        energy, induced = induction(charges, positions, TYPES, ONE, 1)
    alpha = float(induction.polarizabilities().detach()[1])
    assert float(energy[0]) == pytest.approx(-0.5 * COULOMB * alpha / distance**4, rel=1e-9)
    np.testing.assert_allclose(induced.numpy(), [[0, 0, 0], [-alpha / distance**2, 0, 0]], atol=1e-12)


def test_the_field_of_a_dipole_is_minus_the_gradient_of_its_potential():
    """Probe charge 0 beside a dipole: the field equals -grad (mu . r / r^3) by autograd, at 9 A."""
    induction = Induction(2, cutoff=5.0).double()
    mu = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    probe = torch.tensor([5.0, 6.0, -4.0], dtype=torch.float64, requires_grad=True)
    potential = (mu * probe).sum() / probe.norm() ** 3
    (gradient,) = torch.autograd.grad(potential, probe)
    positions = torch.stack([torch.zeros(3, dtype=torch.float64), probe.detach()])
    field = induction.field(torch.zeros(2, dtype=torch.float64), positions, ONE, 1,
                            torch.stack([mu, torch.zeros(3, dtype=torch.float64)]))
    np.testing.assert_allclose(field[1].numpy(), -gradient.numpy(), rtol=1e-9)


def test_neighbours_well_inside_the_cutoff_induce_nothing_and_the_onset_is_smooth():
    induction = Induction(2, cutoff=5.0).double()
    energies = []
    for distance in (3.9, 4.0, 4.5, 5.0, 5.1):
        charges, positions, dipoles = _pair(distance, dipoles=[[0.0, 0.2, 0.0], [0.1, 0.0, 0.0]])
        with torch.no_grad():
            energy, induced = induction(charges, positions, TYPES, ONE, 1, dipoles)
        energies.append(float(energy[0]))
        if distance <= 4.0:
            assert energies[-1] == 0.0 and float(induced.abs().max()) == 0.0
    assert energies[2] < 0.0 and energies[3] < energies[2]  # rising with the onset, then the bare law
    far = -0.5 * COULOMB * float(induction.polarizabilities().detach()[1]) / 5.1**4
    assert energies[4] == pytest.approx(far, rel=0.05)  # dipoles change it a little


def test_dense_pairs_while_compiling_equal_the_per_structure_pairs(monkeypatch):
    rng = np.random.default_rng(4)
    n = 8
    charges = torch.tensor(rng.normal(size=n))
    dipoles = torch.tensor(rng.normal(size=(n, 3))) * 0.3
    positions = torch.tensor(rng.normal(size=(n, 3)) * 3.0)
    positions[6:] = 0.0  # padding atoms together at the origin, a structure of their own
    structure, types = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2]), torch.tensor([0, 1, 1, 0, 1, 1, 0, 0])
    induction = Induction(2, cutoff=3.0).double().requires_grad_(False)
    eager = induction(charges, positions, types, structure, 3, dipoles)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    dense = induction(charges, positions, types, structure, 3, dipoles)
    for a, b in zip(dense, eager):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert float(eager[0][0]) < 0.0 and float(eager[0][2]) == 0.0


def test_an_ion_far_from_a_water_binds_as_its_charges_and_the_waters_polarizabilities_say():
    """Beyond the cutoff the polarizable model differs from the multipole one (same weights) by the
    induction of the water by the ion's predicted charges, ``-k/2 sum_w alpha_w |F_w|^2`` (the ion's atomic
    dipoles and the water's field at the ion add under 1%), about ``-k alpha_water / (2 r^4)``."""
    targets = ["charges", "dipole", "energy"]
    polar = make_model("so3net", electrostatics="polarizable", charge_spread="formal", targets=targets)
    plain = make_model("so3net", electrostatics="multipole", charge_spread="formal", targets=targets)
    polarizabilities = polar.induction.polarizabilities().detach().numpy()  # [n_types] A^3
    ion, water = Atoms("OH3", [[0, 0, 0], [0.97, 0, 0], [-0.3, 0.9, 0], [-0.3, -0.45, 0.8]]), water_cluster(1, seed=2)
    for distance in (20.0, 40.0):
        pair = ion + water.copy()
        pair.positions[4:] += (distance, 0.0, 0.0)
        pair.info["charge"] = 1
        out = polar.predict([pair])
        q, r = out["charges"][0][:4], pair.positions
        arms = r[4:, None] - r[None, :4]  # [3 water atoms, 4 ion atoms, 3]
        field = (q[None, :, None] * arms / np.linalg.norm(arms, axis=2, keepdims=True) ** 3).sum(1)
        alpha = polarizabilities[polar.type_map.types(pair.numbers[4:])]  # [3]
        expected = -0.5 * COULOMB * (alpha * (field**2).sum(1)).sum()
        gap = out["energy"][0] - plain.predict([pair])["energy"][0]
        assert gap == pytest.approx(expected, rel=0.01)
        assert gap == pytest.approx(-0.5 * COULOMB * alpha.sum() / distance**4, rel=0.2)


def test_invariant_differentiable_and_batched_with_induction():
    model = make_model("so3net", electrostatics="polarizable", targets=["charges", "dipole", "quadrupole", "energy"])
    atoms, other = water_cluster(3, seed=3), water_cluster(2, seed=4)
    other.info["charge"] = 1
    out = model.predict([atoms])
    plain = make_model("so3net", electrostatics="multipole", targets=["charges", "dipole", "quadrupole", "energy"])
    assert abs(out["energy"][0] - plain.predict([atoms])["energy"][0]) > 1e-6  # pairs in the onset: induction acts
    assert np.abs(out["dipole"][0] - plain.predict([atoms])["dipole"][0]).max() > 1e-6
    rotation = random_rotation(5)
    moved = atoms[np.random.default_rng(5).permutation(len(atoms))]
    moved.positions = moved.positions @ rotation.T + (4.0, -2.0, 1.0)
    moved_out = model.predict([moved])
    assert_close(moved_out["energy"], out["energy"], torch.float64)
    assert_close(moved_out["dipole"][0], out["dipole"][0] @ rotation.T, torch.float64)
    together = model.predict([other, atoms])
    assert_close(together["energy"][1], out["energy"][0], torch.float64)
    assert_close(together["energy"][0], model.predict([other])["energy"][0], torch.float64)
    assert_forces_are_minus_the_gradient(model, atoms, components=(0, 4, 8, 20))


def test_periodic_cells_are_refused_by_the_model_and_by_train(tmp_path):
    model = make_model("so3net", electrostatics="polarizable")
    box = water_cluster(2, seed=1)
    box.cell, box.pbc = np.eye(3) * 9.0, True
    with pytest.raises(ValueError, match="open boundaries only"):
        model.predict([box])
    path = tmp_path / "box.xyz"
    box.info["dft_energy"] = 0.0
    box.info["dft_dipole"] = [0.0, 0.0, 0.0]
    box.arrays["dft_hirshfeld"] = np.zeros(len(box))
    ase.io.write(path, [water_cluster(1), box])
    config = TrainConfig(data=str(path), targets=["charges", "dipole", "energy"], electrostatics="polarizable")
    with pytest.raises(InputError, match=r"structure 1 of .*box.xyz: pbc is set"):
        prepare_data(config)
