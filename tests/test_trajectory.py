"""``equiprop md``: equilibrated NVE that conserves energy, frames that hold the model's dipole and polarizability."""

import ase.io
import numpy as np
import pytest
from ase.build import molecule

import equiprop
from conftest import water_cluster
from equiprop.cli.main import main
from equiprop.models.checkpoint import save_checkpoint
from equiprop.sampling.guard import Guard
from equiprop.sampling.trajectory import TrajectorySettings, run_trajectory
from test_spectra import _polarizable


def test_md_command_writes_nve_frames_for_spectra(tmp_path):
    model = _polarizable()
    save_checkpoint(tmp_path / "m.pt", model, {}, {})
    molecule("H2O").write(tmp_path / "water.xyz")
    out = tmp_path / "md.xyz"
    args = ["md", str(tmp_path / "m.pt"), str(tmp_path / "water.xyz"), "--out", str(out), "--temperature", "50",
            "--equilibrate", "100", "--time", "400", "--every", "1", "--minimise", "1e-3"]
    assert main(args) == 0
    frames = ase.io.read(out, ":")
    assert len(frames) == 400
    times = np.array([f.info["md_time_fs"] for f in frames])
    np.testing.assert_allclose(np.diff(times), 1.0)
    kinetic = np.array([f.get_kinetic_energy() for f in frames])
    total = np.array([f.get_potential_energy() for f in frames]) + kinetic
    assert kinetic.mean() > 1e-3  # it moves
    assert np.abs(total - total[0]).max() < 0.02 * kinetic.mean()  # velocity Verlet at 0.5 fs conserves energy
    calculator = equiprop.EquipropCalculator(model)
    for k in (0, 399):  # the stored tensors are the model's at the stored positions
        fresh = ase.io.read(out, k)
        fresh.calc = calculator
        np.testing.assert_allclose(frames[k].get_dipole_moment(), fresh.get_dipole_moment(), atol=1e-6)
        np.testing.assert_allclose(frames[k].info["polarizability"].reshape(3, 3),
                                   calculator.get_property("polarizability", fresh), atol=1e-6)
    assert main(args) == 2  # the trajectory exists: not overwritten
    assert main(["spectrum", "md", str(out), "--out", str(tmp_path / "ir"), "--dt", "1", "--temperature", "50",
                 "--raman"]) == 0


def test_a_collapse_stops_the_run_and_keeps_what_came_before(tmp_path):
    from conftest import make_model

    frames = []
    dimer = water_cluster(2, seed=1)
    written, stopped = run_trajectory(dimer, equiprop.EquipropCalculator(make_model("so3net")), frames.append,
                                      TrajectorySettings(equilibrate_fs=0, production_fs=5), guard=Guard(min_heavy_distance=10))
    assert written == len(frames) == 0 and "heavy atoms" in stopped
    with pytest.raises(ValueError, match="not a multiple"):
        TrajectorySettings(interval_fs=0.7)
    TrajectorySettings(interval_fs=0.3, timestep_fs=0.1)  # 3 steps, though 3 * 0.1 != 0.3 in floats
    assert main(["md", "m.pt", "water.xyz", "--out", str(tmp_path / "x.xyz"), "--every", "0.7"]) == 2
