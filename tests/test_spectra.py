"""Harmonic IR by autograd: the Hessian and dipole derivatives are finite differences' limit, and ASE's Infrared agrees."""

import csv

import numpy as np
import pytest
import torch
from ase.build import molecule
from ase.optimize import BFGS
from ase.vibrations import Infrared

import equiprop
from conftest import make_model, water_cluster
from equiprop.cli.main import main
from equiprop.models.committee import Committee
from equiprop.spectra.harmonic import broadened, derivatives, harmonic


def _finite_differences(model, atoms, delta=1e-4):
    """Central differences of the calculator's forces and dipole: (Hessian [3N, 3N], d mu / d x [3N, 3])."""
    calculator = equiprop.EquipropCalculator(model)
    hessian, dipole = [], []
    for k in range(3 * len(atoms)):
        values = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions.reshape(-1)[k] += sign * delta
            moved.calc = calculator
            values.append((moved.get_forces().reshape(-1), moved.get_dipole_moment()))
        hessian.append(-(values[0][0] - values[1][0]) / (2 * delta))
        dipole.append((values[0][1] - values[1][1]) / (2 * delta))
    return np.array(hessian), np.array(dipole)


@pytest.mark.parametrize("kind", ["so3net", "schnet"])
def test_autograd_hessian_and_dipole_derivatives_are_the_finite_difference_limit(kind):
    model = make_model(kind, dtype=torch.float64)
    atoms = water_cluster(2, seed=3)  # not a minimum: the second derivatives hold anywhere
    hessian, dipole = derivatives(model, atoms)
    fd_hessian, fd_dipole = _finite_differences(model, atoms)
    assert np.abs(hessian).max() > 0.1
    np.testing.assert_allclose(hessian, fd_hessian, atol=1e-6 * np.abs(hessian).max())
    np.testing.assert_allclose(dipole, fd_dipole, atol=1e-6 * np.abs(dipole).max())
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-12)


def test_frequencies_and_intensities_are_ases_infrared(tmp_path, monkeypatch):
    model = make_model("so3net", dtype=torch.float64)
    atoms = molecule("H2O")
    atoms.calc = equiprop.EquipropCalculator(model)
    assert BFGS(atoms, logfile=None).run(fmax=1e-5, steps=1000)
    result = harmonic(model, atoms)
    monkeypatch.chdir(tmp_path)
    ir = Infrared(atoms, name="ir", delta=0.005, nfree=4)
    ir.run()
    vib = result.vibrations(50.0)
    assert len(vib) == 3  # the monomer's bend and two stretches
    ase_frequencies = ir.get_frequencies().real[-3:]
    np.testing.assert_allclose(result.frequencies[vib], ase_frequencies, rtol=1e-3)
    np.testing.assert_allclose(result.intensities[vib], ir.intensities[-3:], rtol=2e-3, atol=1e-4)
    assert np.abs(result.frequencies[:6]).max() < 20.0  # translations and rotations: zero at a minimum
    # the invariances: a committee's analysis is its members' mean, rotating the molecule changes nothing
    rotated = atoms.copy()
    rotated.rotate(63, (1, 2, 0.5), center="COM")
    np.testing.assert_allclose(harmonic(model, rotated).frequencies[vib], result.frequencies[vib], rtol=1e-6)
    np.testing.assert_allclose(harmonic(model, rotated).intensities[vib], result.intensities[vib], rtol=1e-6)
    twin = Committee([model, make_model("so3net", dtype=torch.float64)])
    np.testing.assert_allclose(derivatives(twin, atoms)[0], derivatives(model, atoms)[0], atol=1e-10)


def test_broadened_peaks_keep_their_area():
    grid = np.linspace(0, 6000, 60001)
    curve = broadened(np.array([1600.0, 3700.0]), np.array([2.0, 0.5]), grid, width=20.0)
    assert np.trapezoid(curve, grid) == pytest.approx(2.5, rel=5e-3)
    assert grid[np.argmax(curve)] == pytest.approx(1600.0, abs=0.2)


def test_spectrum_harmonic_command(run_dir, tmp_path):
    structure = tmp_path / "water.xyz"
    molecule("H2O").write(structure)
    out = tmp_path / "ir"
    args = ["spectrum", "harmonic", str(run_dir / "best.pt"), str(structure), "--out", str(out), "--fmax", "1e-3"]
    assert main(args) == 0
    with open(out / "modes.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert 1 <= len(rows) <= 3 and all(float(r["freq_cm"]) > 50 for r in rows)
    assert (out / "spectrum.png").stat().st_size > 10_000 and (out / "minimum.xyz").is_file()
    assert main(args) == 2  # no silent overwrite
    assert main(args + ["--overwrite", "--reference", str(out / "modes.csv")]) == 0
    assert main(args + ["--overwrite", "--reference", str(structure)]) == 2  # not a modes.csv: one line, exit 2
