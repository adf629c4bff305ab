"""The ASE calculator: forces as the energy gradient, symmetry, and energy-conserving molecular dynamics."""

import numpy as np
import pytest
import torch
from ase import units
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

from equiprop import datasets
from equiprop.cli.main import main
from equiprop.calculator import EquipropCalculator


def test_calculator_forces_are_minus_the_energy_gradient_and_follow_the_atoms():
    """Through ASE only: central differences of get_potential_energy, fresh results after a move, rotation."""
    from conftest import make_model, random_rotation, rotated, water_cluster

    model = make_model("so3net", torch.float64)
    atoms = water_cluster(3, seed=4)
    atoms.calc = EquipropCalculator(model)
    forces, energy, dipole = atoms.get_forces(), atoms.get_potential_energy(), atoms.get_dipole_moment()
    assert np.abs(forces).max() > 1e-2
    h, numeric = 1e-4, np.zeros_like(forces)
    for i in range(len(atoms)):
        for axis in range(3):
            energies = []
            for step in (h, -h):
                atoms.positions[i, axis] += step
                energies.append(atoms.get_potential_energy())
                atoms.positions[i, axis] -= step
            numeric[i, axis] = -(energies[0] - energies[1]) / (2 * h)
    np.testing.assert_allclose(forces, numeric, atol=1e-6)
    assert atoms.get_potential_energy() == energy  # back where it started
    R = random_rotation(3)
    turned = rotated(atoms, R, shift=(0.5, -1.0, 2.0))
    turned.calc = EquipropCalculator(model)
    np.testing.assert_allclose(turned.get_potential_energy(), energy, atol=1e-9)
    np.testing.assert_allclose(turned.get_forces(), forces @ R.T, atol=1e-9)
    np.testing.assert_allclose(turned.get_dipole_moment(), dipole @ R.T, atol=1e-9)
    np.testing.assert_allclose(np.sum(turned.get_charges()), 0.0, atol=1e-9)


def test_calculator_loads_a_checkpoint_with_what_it_was_trained_for(run_dir):
    atoms = datasets.water_pbe0()[1]
    atoms.calc = EquipropCalculator(run_dir / "best.pt")
    assert set(atoms.calc.implemented_properties) >= {"energy", "forces", "dipole", "charges"}
    assert atoms.get_charges().shape == (len(atoms),) and atoms.get_dipole_moment().shape == (3,)


@pytest.fixture(scope="module")
def energy_model(slice_file, tmp_path_factory):
    """SchNet trained on energies and forces long enough that its forces are real (~1 eV/A)."""
    out = tmp_path_factory.mktemp("md") / "run"
    assert main(["train", "--model", "schnet", "--targets", "energy,forces", "--data", str(slice_file), "--epochs", "15",
                 "--lr", "5e-3", "--features", "16", "--interactions", "2", "--batch-size", "4", "--cutoff", "3.0",
                 "--out", str(out)]) == 0
    return out / "best.pt"


def test_nve_molecular_dynamics_conserves_energy(energy_model):
    """VelocityVerlet, 0.25 fs, 400 steps on a water trimer: total energy drift stays small."""
    atoms = datasets.water_pbe0()[1]
    atoms.calc = EquipropCalculator(energy_model)
    assert np.sqrt(np.mean(atoms.get_forces() ** 2)) > 0.3  # a model with real forces
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = VelocityVerlet(atoms, timestep=0.25 * units.fs)
    totals, kinetic = [], []
    for _ in range(40):
        dynamics.run(10)
        totals.append(atoms.get_total_energy())
        kinetic.append(atoms.get_kinetic_energy())
    drift = np.abs(np.array(totals) - totals[0]).max()
    assert np.ptp(kinetic) > 20 * drift  # energy flows between kinetic and potential...
    assert drift < 2e-3 * len(atoms)  # ...while the total stays within 2 meV/atom
