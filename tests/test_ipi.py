"""i-PI drives an equiprop model: path-integral MD with two clients or batched beads, energies and extras checked."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.units import Bohr

import equiprop
from conftest import periodic_water
from equiprop.cli.main import main

pytest.importorskip("ipi")
ROOT = Path(__file__).resolve().parents[1]
INPUT = ROOT / "docs" / "examples" / "ipi" / "input.xml"


def _input(text: str, address: str, steps: int, beads: int, batch: int | None = None) -> str:
    """The shipped example, shortened: ``steps`` steps of ``beads`` beads, every step written, on ``address``."""
    socket = f"<address>{address}</address>" + (f"<batch_size>{batch}</batch_size>" if batch else "")
    replace = {"<total_steps>4000</total_steps>": f"<total_steps>{steps}</total_steps>",
               "nbeads='8'": f"nbeads='{beads}'", "<address>equiprop</address>": socket,
               "stride='10'": "stride='1'", "stride='20'": "stride='1'"}
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("clients, batch", [(2, None), (1, 4)], ids=["two clients", "one client, batched beads"])
def test_ipi_runs_path_integral_md(run_dir, tmp_path, clients, batch):
    hexamer = ase.io.read(INPUT.parent / "hexamer.xyz")
    start = Atoms(hexamer.get_chemical_symbols()[:9], positions=hexamer.positions[:9], cell=hexamer.cell, pbc=False)
    ase.io.write(tmp_path / "hexamer.xyz", start, format="extxyz")  # three of its waters: a fast test
    address = f"eqp-{uuid.uuid4().hex[:8]}"
    (tmp_path / "input.xml").write_text(_input(INPUT.read_text(), address, steps=4, beads=4, batch=batch))
    checkpoint = str(run_dir / "best.pt")
    client = [sys.executable, "-m", "equiprop", "ipi", checkpoint, "--template", "hexamer.xyz", "--address", address,
              "--wait", "60"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    clients = [subprocess.Popen(client, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(clients)]  # started before the server: they wait for its socket
    for c in clients:  # model loaded, polling for the socket: once i-PI opens it, every client joins at once
        assert "waiting for i-PI" in c.stdout.readline()
    server = subprocess.run([str(Path(sys.executable).with_name("i-pi")), "input.xml"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=240)
    logs = [c.communicate(timeout=60)[0] for c in clients]
    assert server.returncode == 0, server.stdout[-2000:] + server.stderr[-2000:]
    assert all(c.returncode == 0 and "exit message from i-PI" in log for c, log in zip(clients, logs)), logs

    table = np.loadtxt(tmp_path / "hexamer.out")  # step, time, conserved, temperature, kinetic_cv, potential (eV)
    assert table.shape == (5, 6) and np.isfinite(table).all()
    model = equiprop.load_model(checkpoint)
    expected = model.predict([start])
    # step 0: every bead sits at the initial structure, so i-PI's potential is the model's energy there
    assert table[0, 5] == pytest.approx(float(expected["energy"][0]), abs=1e-4)
    assert np.ptp(table[:, 5]) > 0  # the beads moved
    dipoles = _extras(tmp_path / "hexamer.dipole_0")
    assert dipoles.shape == (5, 3)
    np.testing.assert_allclose(dipoles[0], expected["dipole"][0] / Bohr, atol=1e-5)  # e*Bohr, i-PI's unit
    assert len(list(tmp_path.glob("hexamer.dipole_*"))) == 4  # one file per bead


def _extras(path: Path) -> np.ndarray:
    """The numbers of an i-PI extras trajectory, one row per step."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return np.array(rows, dtype=float)


def test_ipi_refuses_bad_input_in_one_line(run_dir, tmp_path, capsys):
    slab = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], cell=[5, 5, 5], pbc=[True, True, False])
    ase.io.write(tmp_path / "slab.xyz", slab, format="extxyz")
    code = main(["ipi", str(run_dir / "best.pt"), "--template", str(tmp_path / "slab.xyz"), "--wait", "0"])
    assert code == 2 and "periodic in some directions only" in capsys.readouterr().err
    ase.io.write(tmp_path / "ok.xyz", Atoms("H2O", positions=slab.positions), format="extxyz")
    code = main(["ipi", str(run_dir / "best.pt"), "--template", str(tmp_path / "ok.xyz"), "--address", "nobody-here",
                 "--wait", "0.5"])
    err = capsys.readouterr().err
    assert code == 2 and "no i-PI listening at /tmp/ipi_nobody-here" in err and len(err.strip().splitlines()) == 1


def test_driver_converts_units_and_gives_the_virial_of_a_cell(run_dir, tmp_path):
    from ase.units import Hartree

    from equiprop.engines.ipi import EquipropDriver

    box = periodic_water(seed=2)
    ase.io.write(tmp_path / "box.xyz", box, format="extxyz")
    driver = EquipropDriver(str(tmp_path / "box.xyz"), str(run_dir / "best.pt"))
    cell, positions = box.cell.array.T / Bohr, box.positions / Bohr  # i-PI's: columns are cell vectors, in Bohr
    energy, forces, virial, extras = driver.compute(cell, positions)
    box.calc = equiprop.EquipropCalculator(str(run_dir / "best.pt"))
    assert energy == pytest.approx(box.get_potential_energy() / Hartree, rel=1e-7)
    np.testing.assert_allclose(forces, box.get_forces() / (Hartree / Bohr), rtol=1e-5, atol=1e-8)
    stress = box.get_stress(voigt=False)
    np.testing.assert_allclose(virial, -stress * box.get_volume() / Hartree, rtol=1e-5, atol=1e-9)
    assert np.abs(virial).max() > 0
    assert "dipole" not in extras and len(json.loads(extras)["charges"]) == len(box)  # a cell has no dipole
    moved = positions.copy()
    moved[0] += 0.05  # one atom: a translation of all would not change the energy
    batched = driver.compute([cell, cell], [positions, moved])  # i-PI's batched request: one forward pass
    assert batched[0][0] == pytest.approx(energy, rel=1e-7) and batched[1][0] != pytest.approx(energy, rel=1e-9)
