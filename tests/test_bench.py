"""bench/equiprop_bench.py runs as bench/run.py calls it: the benchmark is not timed here, only alive.

(``--electrostatics auto`` once reached the model unresolved and every equiprop row of bench/run.py failed.)
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import ase.io

from equiprop.datasets import water_pbe0

ROOT = Path(__file__).resolve().parents[1]


def test_equiprop_bench_trains_what_a_user_gets_by_default(tmp_path):
    frames = water_pbe0()[:24]
    for name, part in (("train", frames[:16]), ("val", frames[16:20]), ("test", frames[20:])):
        ase.io.write(tmp_path / f"{name}.xyz", part, format="extxyz")
    out = tmp_path / "report.json"
    command = [sys.executable, "bench/equiprop_bench.py", "--model", "so3net", "--split-dir", str(tmp_path), "--budget", "2",
               "--threads", "1", "--interactions", "1", "--features", "8", "--inference-seconds", "0.2", "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["settings"]["electrostatics"] == "multipole"  # auto, resolved as `equiprop train` resolves it
    errors = [report["test_mae"][k] for k in ("charges_e", "dipole_eA", "energy_meV_per_atom", "forces_meV_per_A")]
    assert all(math.isfinite(e) and e > 0 for e in errors)
    assert report["train_structures_per_s"] > 0


def test_dimer_parts_leaves_nothing_beyond_the_cutoff_but_the_monomers_multipoles_and_induction(tmp_path):
    """bench/dimer_parts.py: at 10 A (cutoff 3 A) the model's whole interaction is the multipole term of
    the monomers' own multipoles, plus a small binding induction for a polarizable model; at 2.9 A the
    partner within the cutoff adds the rest."""
    from conftest import make_model
    from equiprop.models.checkpoint import save_checkpoint

    for electrostatics in ("multipole", "polarizable"):
        model = make_model("so3net", electrostatics=electrostatics, charge_spread="formal",  # no charge leaks apart
                           targets=["charges", "dipole", "quadrupole", "energy"])
        path = tmp_path / f"{electrostatics}.pt"
        save_checkpoint(path, model, config={}, normalization={})
        done = subprocess.run([sys.executable, "bench/dimer_parts.py", str(path), "--distances", "2.9,10.0"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        near, far = ([float(v) for v in line.split()] for line in done.stdout.splitlines()[1:])
        r, whole, frozen, rest, response, induction, network = far
        assert abs(frozen) > 1e-2 and abs(near[3]) > 1e-2
        assert abs(response) <= 1e-4 and abs(network) <= 1e-4  # nothing within reach (printed to 1e-4 meV)
        if electrostatics == "multipole":
            assert abs(rest) <= 1e-4  # whole = frozen beyond reach
        else:
            assert -0.1 * abs(frozen) < induction < 0.0  # induction binds, and is small
