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
    """Central differences of the calculator's forces, dipole and polarizability:
    (Hessian [3N, 3N], d mu / d x [3N, 3], d alpha / d x [3N, 3, 3])."""
    calculator = equiprop.EquipropCalculator(model)
    hessian, dipole, alpha = [], [], []
    for k in range(3 * len(atoms)):
        values = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions.reshape(-1)[k] += sign * delta
            moved.calc = calculator
            values.append((moved.get_forces().reshape(-1), moved.get_dipole_moment(),
                           calculator.get_property("polarizability", moved)))
        hessian.append(-(values[0][0] - values[1][0]) / (2 * delta))
        dipole.append((values[0][1] - values[1][1]) / (2 * delta))
        alpha.append((values[0][2] - values[1][2]) / (2 * delta))
    return np.array(hessian), np.array(dipole), np.array(alpha)


def _polarizable(kind="so3net", seed=5):
    """A random float64 model with every target the spectra read, its polarizability head random too
    (seed 5: its monomer minimum is bent, with three well separated, IR- and Raman-active modes)."""
    model = make_model(kind, dtype=torch.float64, seed=seed, targets=["charges", "dipole", "energy", "polarizability"])
    with torch.no_grad():
        torch.nn.init.normal_(model.polarizability_head.net[-1].weight, std=0.5)
        torch.nn.init.normal_(model.polarizability_head.net[-1].bias, std=0.5)
    return model


@pytest.mark.parametrize("kind", ["so3net", "schnet"])
def test_autograd_hessian_and_dipole_derivatives_are_the_finite_difference_limit(kind):
    model = _polarizable(kind)
    atoms = water_cluster(2, seed=3)  # not a minimum: the second derivatives hold anywhere
    hessian, dipole, alpha = derivatives(model, atoms)
    fd_hessian, fd_dipole, fd_alpha = _finite_differences(model, atoms)
    assert np.abs(hessian).max() > 0.1 and np.abs(alpha).max() > 0.01
    np.testing.assert_allclose(hessian, fd_hessian, atol=1e-6 * np.abs(hessian).max())
    np.testing.assert_allclose(dipole, fd_dipole, atol=1e-6 * np.abs(dipole).max())
    np.testing.assert_allclose(alpha, fd_alpha, atol=1e-6 * np.abs(alpha).max())
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


def test_md_spectrum_recovers_known_frequencies_and_areas():
    from ase import units

    from equiprop.spectra.dynamics import CM_PER_INVERSE_FS, ir_spectrum, vibrational_dos

    dt, t = 0.5, np.arange(16000) * 0.5
    bands = {1650.0: 0.04, 3400.0: 0.01}  # cm^-1: amplitude of the dipole's oscillation (e*A)
    dipoles = np.zeros((len(t), 3))
    for k, (nu, amplitude) in enumerate(bands.items()):
        dipoles[:, k] += amplitude * np.cos(2 * np.pi * nu / CM_PER_INVERSE_FS * t + k)
    spectrum = ir_spectrum(dipoles, dt, temperature=300.0)
    kt = units.kB * 300.0
    for nu, amplitude in bands.items():
        band = np.abs(spectrum.wavenumbers - nu) < 150
        assert spectrum.wavenumbers[band][np.argmax(spectrum.values[band])] == pytest.approx(nu, abs=spectrum.resolution)
        omega = 2 * np.pi * nu / CM_PER_INVERSE_FS  # fs^-1: <mu'^2> = (a w)^2 / 2
        expected = (amplitude * omega) ** 2 / 2 * units._amu * 1e10 / units._e / kt / units.Debye ** 2
        assert np.trapezoid(spectrum.values[band], spectrum.wavenumbers[band]) == pytest.approx(expected, rel=0.03)
    # the density of states integrates to the degrees of freedom at equipartition: m <v^2> = kT per component
    rng = np.random.default_rng(1)
    masses = np.array([16.0, 1.0, 1.0])
    amplitude = np.sqrt(2 * kt / (masses * units._amu * 1e10 / units._e))  # A/fs: cos^2 averages 1/2
    phases = rng.uniform(0, 2 * np.pi, (3, 3))
    velocities = amplitude[None, :, None] * np.cos(2 * np.pi * 2000.0 / CM_PER_INVERSE_FS * t[:, None, None] + phases)
    vdos = vibrational_dos(velocities, masses, dt, 300.0)
    assert np.trapezoid(vdos.values, vdos.wavenumbers) == pytest.approx(9.0, rel=0.01)


def test_md_band_areas_are_the_harmonic_intensities(tmp_path):
    """NVE of the model's monomer with each normal mode given kT: IR and Raman bands have the harmonic sticks' areas."""
    import ase.io
    from ase import units
    from ase.md.verlet import VelocityVerlet

    model = _polarizable()
    atoms = molecule("H2O")
    atoms.calc = equiprop.EquipropCalculator(model)
    assert BFGS(atoms, logfile=None).run(fmax=1e-5, steps=1000)
    result = harmonic(model, atoms)
    temperature = 2.0  # low: this random model is anharmonic (at 20 K its bands lose 5-10% of their area)
    masses = atoms.get_masses()
    velocities = np.zeros((len(atoms), 3))
    for k in result.vibrations(50.0):  # kinetic energy kT per mode at t = 0: mode energy kT, as equipartition
        pattern = result.modes[k] * np.sqrt(masses)[:, None]  # unit mass-weighted vector
        velocities += np.sqrt(2 * units.kB * temperature) * pattern / np.sqrt(masses)[:, None]
    atoms.set_velocities(velocities)
    path = tmp_path / "md.xyz"
    dynamics = VelocityVerlet(atoms, 0.25 * units.fs)
    def write():
        atoms.info["polarizability"] = atoms.calc.results["polarizability"].reshape(9)  # extxyz keeps info
        ase.io.write(path, atoms, append=True)

    dynamics.attach(write, interval=2)
    dynamics.run(6000)
    out = tmp_path / "spectrum"
    assert main(["spectrum", "md", str(path), "--out", str(out), "--dt", "0.5", "--temperature", str(temperature),
                 "--raman"]) == 0
    table = np.loadtxt(out / "ir.csv", delimiter=",", skiprows=1)
    raman = np.loadtxt(out / "raman.csv", delimiter=",", skiprows=1)
    vib = result.vibrations(50.0)
    assert len(vib) == 3 and result.raman_activities[vib].min() > 1.0 and result.intensities[vib].min() > 1.0
    edges = np.concatenate([[result.frequencies[vib[0]] - 300], (result.frequencies[vib[1:]] + result.frequencies[vib[:-1]]) / 2,
                            [result.frequencies[vib[-1]] + 300]])  # each band up to the midpoints
    for n, k in enumerate(vib):
        band = (table[:, 0] > edges[n]) & (table[:, 0] < edges[n + 1])
        area = np.trapezoid(table[band, 1], table[band, 0])
        assert area == pytest.approx(result.intensities[k], rel=0.03)
        area = np.trapezoid(raman[band, 3], raman[band, 0])
        assert area == pytest.approx(result.raman_activities[k], rel=0.03)
    assert (out / "vdos.csv").is_file() and (out / "spectrum.png").stat().st_size > 10_000
    assert main(["spectrum", "md", str(path), "--out", str(out), "--dt", "0.5", "--temperature", "2"]) == 2


def test_dft_reference_runs_the_labellers_calculator_and_resumes(run_dir, tmp_path, monkeypatch):
    """The --dft-reference plumbing with a model standing in for PySCF (a real SCF per displacement is too slow here)."""
    import equiprop.labelling.calculator as dft

    stand_in = make_model("so3net", dtype=torch.float64)
    calls = []

    class StandIn(equiprop.EquipropCalculator):
        def __init__(self, *args, **kwargs):
            super().__init__(stand_in)

        def calculate(self, *args, **kwargs):
            calls.append(1)
            return super().calculate(*args, **kwargs)

    monkeypatch.setattr(dft, "DFTCalculator", StandIn)
    structure = tmp_path / "water.xyz"
    molecule("H2O").write(structure)
    out = tmp_path / "ir"
    args = ["spectrum", "harmonic", str(run_dir / "best.pt"), str(structure), "--out", str(out), "--dft-reference",
            "--dft-fmax", "1e-4"]
    assert main(args) == 0
    with open(out / "dft" / "modes.csv") as handle:
        rows = list(csv.DictReader(handle))
    atoms = ase_read(out / "dft" / "minimum.xyz")
    expected = harmonic(stand_in, atoms)
    vib = expected.vibrations(50.0)
    # central differences of 0.01 A against the exact second derivatives: 0.3% at the stretches of this model
    np.testing.assert_allclose([float(r["freq_cm"]) for r in rows], expected.frequencies[vib], rtol=6e-3)
    np.testing.assert_allclose([float(r["ir_intensity"]) for r in rows], expected.intensities[vib], rtol=3e-2, atol=1e-3)
    first = len(calls)
    assert main(args + ["--overwrite"]) == 0 and len(calls) == first  # resumed: no calculation repeated


def test_dft_reference_raman_is_the_autograd_one(tmp_path, monkeypatch):
    """With a polarizability model the DFT reference also writes Raman activities, by central differences of
    the calculator's polarizability (a polarizable model stands in for PySCF): they are the autograd ones."""
    import equiprop.labelling.calculator as dft
    from equiprop.models.checkpoint import save_checkpoint

    stand_in = _polarizable()
    settings = []

    class StandIn(equiprop.EquipropCalculator):
        def __init__(self, dft_settings=None):  # the DFT BFGS needs no polarizability: default settings
            settings.append(dft_settings)
            super().__init__(stand_in)

    monkeypatch.setattr(dft, "DFTCalculator", StandIn)
    save_checkpoint(tmp_path / "m.pt", stand_in, {}, {})
    structure = tmp_path / "water.xyz"
    molecule("H2O").write(structure)
    out = tmp_path / "raman"
    assert main(["spectrum", "harmonic", str(tmp_path / "m.pt"), str(structure), "--out", str(out),
                 "--dft-reference", "--dft-fmax", "1e-4"]) == 0
    assert settings[0] is None and settings[-1].polarizability  # the labeller is asked for the finite-field polarizability
    with open(out / "dft" / "modes.csv") as handle:
        rows = list(csv.DictReader(handle))
    expected = harmonic(stand_in, ase_read(out / "dft" / "minimum.xyz"))
    vib = expected.vibrations(50.0)
    assert expected.raman_activities[vib].min() > 1.0
    np.testing.assert_allclose([float(r["raman_activity"]) for r in rows], expected.raman_activities[vib], rtol=3e-2)
    assert (out / "dft" / "displacements-raman").is_dir()


def ase_read(path):
    import ase.io

    return ase.io.read(path)
