"""The metatomic export (equiprop export --format metatomic) runs without equiprop and gives the calculator's numbers."""

import numpy as np
import pytest
import torch
from ase import units
from ase.md.verlet import VelocityVerlet

import equiprop
from conftest import make_model, periodic_water, water_cluster
from equiprop import datasets
from equiprop.cli.main import main
from equiprop.models.committee import Committee

pytest.importorskip("metatomic.torch")
pytest.importorskip("metatomic_ase")
from metatomic.torch import ModelOutput  # noqa: E402
from metatomic_ase import MetatomicCalculator  # noqa: E402

from equiprop.engines.metatomic import export  # noqa: E402

EXTRA = {"charge": ModelOutput(unit="e", sample_kind="atom"),
         "equiprop::dipole": ModelOutput(unit="e*Angstrom", sample_kind="system")}


def _both(atoms, model, path):
    """(equiprop calculator's atoms, metatomic calculator's atoms, the metatomic calculator)."""
    ours, theirs = atoms.copy(), atoms.copy()
    ours.calc = equiprop.EquipropCalculator(model)
    calculator = MetatomicCalculator(str(path), additional_outputs=EXTRA if not atoms.pbc.any() else {})
    theirs.calc = calculator
    return ours, theirs, calculator


def _extra(calculator, name):
    return calculator.additional_outputs[name].block().values.detach().numpy().reshape(-1)


def test_exported_checkpoint_gives_the_calculators_energy_forces_dipole_charges(run_dir, tmp_path):
    path = tmp_path / "model.pt"
    assert main(["export", str(run_dir / "best.pt"), str(path), "--format", "metatomic"]) == 0
    assert main(["export", str(run_dir / "best.pt"), str(path)]) == 2  # no silent overwrite
    frames = datasets.water_pbe0()
    for atoms in (frames[30], frames[31], frames[200]):  # frames it was not traced on, of several sizes
        ours, theirs, calculator = _both(atoms, str(run_dir / "best.pt"), path)
        energy = ours.get_potential_energy()
        assert theirs.get_potential_energy() == pytest.approx(energy, rel=1e-5)
        np.testing.assert_allclose(theirs.get_forces(), ours.get_forces(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(_extra(calculator, "equiprop::dipole"), ours.get_dipole_moment(), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(_extra(calculator, "charge"), ours.get_charges(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", ["so3net", "schnet"])
def test_trace_holds_for_other_sizes_cells_and_committees(kind, tmp_path):
    model = make_model(kind, dtype=torch.float32)
    path = tmp_path / "single.pt"
    export(model, path)
    for atoms in (water_cluster(2, seed=1), water_cluster(7, seed=2)):
        ours, theirs, calculator = _both(atoms, model, path)
        assert theirs.get_potential_energy() == pytest.approx(ours.get_potential_energy(), rel=1e-5)
        np.testing.assert_allclose(theirs.get_forces(), ours.get_forces(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(_extra(calculator, "equiprop::dipole"), ours.get_dipole_moment(), rtol=1e-4, atol=1e-6)
    ours, theirs, _ = _both(periodic_water(seed=4), model, path)  # stress by the engine's autograd through the cell
    assert theirs.get_potential_energy() == pytest.approx(ours.get_potential_energy(), rel=1e-5)
    stress = ours.get_stress()
    assert np.abs(stress).max() > 1e-5
    np.testing.assert_allclose(theirs.get_stress(), stress, rtol=1e-3, atol=1e-7)

    committee = Committee([make_model(kind, dtype=torch.float32, seed=seed) for seed in range(3)])
    export(committee, tmp_path / "committee.pt")
    atoms = water_cluster(4, seed=3)
    ours = atoms.copy()
    ours.calc = equiprop.EquipropCalculator(committee)
    theirs = atoms.copy()
    theirs.calc = MetatomicCalculator(str(tmp_path / "committee.pt"), additional_outputs={
        "energy_uncertainty": ModelOutput(unit="eV", sample_kind="system")})
    assert theirs.get_potential_energy() == pytest.approx(ours.get_potential_energy(), rel=1e-5)
    np.testing.assert_allclose(theirs.get_forces(), ours.get_forces(), rtol=1e-4, atol=1e-5)
    assert _extra(theirs.calc, "energy_uncertainty")[0] == pytest.approx(ours.calc.results["energy_std"], rel=1e-4)


def test_md_with_the_export_follows_the_calculators_trajectory(tmp_path):
    model = make_model("so3net", dtype=torch.float32)
    export(model, tmp_path / "model.pt")
    start = water_cluster(3, seed=5)
    start.set_velocities(np.random.default_rng(0).normal(0.0, 0.01, (len(start), 3)))
    ours, theirs, _ = _both(start, model, tmp_path / "model.pt")
    for atoms in (ours, theirs):
        atoms.set_velocities(start.get_velocities())
        VelocityVerlet(atoms, 0.25 * units.fs).run(10)
    assert np.abs(theirs.positions - start.positions).max() > 1e-3  # it moved
    np.testing.assert_allclose(theirs.positions, ours.positions, atol=1e-5)
    assert theirs.get_total_energy() == pytest.approx(ours.get_total_energy(), abs=1e-4)


def test_ipi_runs_the_export_itself(tmp_path):
    """docs/examples/metatomic/input.xml: i-PI's own metatomic driver, 4 beads, a few steps, on the model's surface."""
    import subprocess
    import sys
    from pathlib import Path

    import ase.io

    root = Path(__file__).resolve().parents[1] / "docs" / "examples"
    (tmp_path / "ipi").mkdir()
    (tmp_path / "ipi" / "hexamer.xyz").write_text((root / "ipi" / "hexamer.xyz").read_text())
    folder = tmp_path / "metatomic"
    folder.mkdir()
    text = (root / "metatomic" / "input.xml").read_text()
    text = text.replace("<total_steps>4000</total_steps>", "<total_steps>4</total_steps>").replace("nbeads='8'", "nbeads='4'")
    (folder / "input.xml").write_text(text.replace("stride='10'", "stride='1'"))
    model = make_model("so3net", dtype=torch.float32)
    export(model, folder / "model.pt")
    result = subprocess.run([str(Path(sys.executable).with_name("i-pi")), "input.xml"], cwd=folder,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = np.loadtxt(folder / "hexamer.out", ndmin=2)
    assert rows.shape[0] == 5  # steps 0..4
    start = ase.io.read(tmp_path / "ipi" / "hexamer.xyz")
    start.calc = equiprop.EquipropCalculator(model)
    assert rows[0, -1] == pytest.approx(start.get_potential_energy(), abs=1e-4)  # every bead starts at the template


@pytest.mark.parametrize("electrostatics, spread", [("multipole", "uniform"), ("polarizable", "formal")])
def test_a_model_with_electrostatics_exports_for_any_size_and_refuses_cells(tmp_path, electrostatics, spread):
    """The all-pairs sums are traced by broadcasting: a trace on the example cluster holds for others.
    (polarizable with formal charges, which also enter the embedding: what charged data train by default.)"""
    model = make_model("so3net", electrostatics=electrostatics, targets=["charges", "dipole", "quadrupole", "energy"],
                       dtype=torch.float32, charge_spread=spread)
    path = tmp_path / "long-range.pt"
    export(model, path)
    for atoms in (water_cluster(2, seed=1), water_cluster(6, seed=5)):
        far = atoms.copy()
        far.positions[3:] += (6.0, 0.0, 0.0)  # beyond the cutoff: only the electrostatics joins the parts
        for structure in (atoms, far):
            ours, theirs, calculator = _both(structure, model, path)
            assert theirs.get_potential_energy() == pytest.approx(ours.get_potential_energy(), rel=1e-5)
            np.testing.assert_allclose(theirs.get_forces(), ours.get_forces(), rtol=1e-4, atol=1e-5)
    with pytest.raises(Exception, match="open boundaries"):
        _both(periodic_water(seed=4), model, path)[1].get_potential_energy()
