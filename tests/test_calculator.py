"""The ASE calculator: same numbers as predict, and energy-conserving molecular dynamics."""

import numpy as np
import pytest
from ase import units
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

from equiprop import datasets
from equiprop.cli.main import main
from equiprop.calculator import EquipropCalculator
from equiprop.train.checkpoint import load_model


def test_calculator_matches_predict(run_dir):
    atoms = datasets.water_pbe0()[1]
    atoms.calc = EquipropCalculator(run_dir / "best.pt")
    reference = load_model(run_dir / "best.pt").predict([atoms])
    assert np.isclose(atoms.get_potential_energy(), reference["energy"][0])
    assert np.allclose(atoms.get_forces(), reference["forces"][0])
    assert np.allclose(atoms.get_dipole_moment(), reference["dipole"][0])
    assert np.allclose(atoms.get_charges(), reference["charges"][0])
    assert set(atoms.calc.implemented_properties) >= {"energy", "forces", "dipole", "charges"}


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
