"""Exploration pieces: the guard, replica MD (independent, locally exact), BFGS minima, selection."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from ase.calculators.calculator import Calculator, all_changes

from conftest import make_model, random_rotation, rotated, water_cluster
from equiprop.calculator import EquipropCalculator
from equiprop.learn.select import Selection, fingerprint, select
from equiprop.sampling.guard import Guard, min_heavy_distance
from equiprop.sampling.md import MDSettings, _side_by_side, run_replicas
from equiprop.sampling.minima import RelaxSettings, relax


def dimer(oo: float) -> Atoms:
    a, b = molecule("H2O"), molecule("H2O")
    b.positions += (oo, 0.0, 0.0)
    return a + b


def test_guard_names_collapsed_and_broken_geometries():
    assert Guard().problem(dimer(2.9)) is None
    assert "heavy atoms 1.90" in Guard().problem(dimer(1.9))
    broken = dimer(2.9)
    broken.positions[1] = broken.positions[0] + (0.0, -1.6, 0.0)  # an O-H bond stretched to 1.6 A
    assert "hydrogen" in Guard().problem(broken)
    assert min_heavy_distance(dimer(2.5)) == pytest.approx(2.5)


def test_replicas_do_not_interact():
    """Forces on a replica inside the side-by-side system equal its forces alone (the model is local)."""
    model = make_model("so3net", targets=["energy", "forces"])
    clusters = [water_cluster(n, seed=n) for n in (2, 3, 4)]
    system, offsets = _side_by_side(clusters, spacing=MDSettings().spacing)
    together = model.predict([system])["forces"][0]
    alone = model.predict(clusters)["forces"]
    for (start, stop), forces in zip(offsets, alone):
        np.testing.assert_allclose(together[start:stop], forces, atol=1e-10)


class Free(Calculator):
    """No forces at all: atoms fly straight (a stand-in for checking the MD bookkeeping)."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3))}


def test_a_replica_out_of_bounds_stops_alone():
    settings = MDSettings(temperature=50.0, duration_fs=10.0, interval_fs=2.0, friction_per_fs=0.0)
    runs = run_replicas([dimer(2.9), dimer(2.0)], Free(), settings, seed=1, labels=["ok", "squeezed"])
    assert runs[1].stopped.startswith("at 2 fs: heavy atoms") and runs[1].frames == []
    assert runs[0].stopped is None and len(runs[0].frames) == 5
    times = [f.info["md_time_fs"] for f in runs[0].frames]
    assert times == pytest.approx([2, 4, 6, 8, 10])
    assert all(f.info["trajectory"] == "ok" and f.info["sample"] == "md" for f in runs[0].frames)
    # free flight at 50 K for 10 fs: atoms moved, but by less than half an Angstrom
    moved = np.linalg.norm(runs[0].frames[-1].positions - runs[0].frames[-1].positions.mean(0)
                           - (dimer(2.9).positions - dimer(2.9).positions.mean(0)), axis=1)
    assert 0.01 < moved.max() < 0.5


def test_relax_reaches_a_minimum_of_the_model():
    model = make_model("so3net", targets=["energy", "forces"])
    calc = EquipropCalculator(model)
    minimum, problem = relax(water_cluster(2, seed=4), calc, RelaxSettings(fmax=0.01, steps=500), Guard(0.0, 10.0))
    assert problem is None and minimum.info["sample"] == "minimum"
    minimum.calc = calc
    assert np.abs(minimum.get_forces()).max() <= 0.01


def test_select_by_score_within_bounds_without_duplicates():
    base = [water_cluster(3, seed=s) for s in range(6)]
    for k, atoms in enumerate(base):
        atoms.info["trajectory"] = "a" if k < 4 else "b"
    candidates = base + [rotated(base[1], random_rotation(2), shift=(3, 0, 0))]  # a copy of 1, moved
    scores = np.array([0.5, 0.9, 0.2, 0.7, 2.5, 0.05, 0.95])
    rule = Selection(n=4, low=0.1, high=2.0, per_trajectory=2)
    chosen = select(candidates, scores, rule)
    # 6 (copy of 1, highest in bounds) and 1 is then a duplicate; 4 above high; 5 below low; trajectory a capped at 2
    assert chosen == [6, 3]
    assert select(candidates, scores, Selection(n=2, low=0.1, high=2.0, per_trajectory=5), known=[base[3]]) == [6, 0]
    assert select(candidates, scores, Selection(n=9, low=0.0, high=9.0, per_trajectory=9), known=[candidates[6]]) == [4, 3, 0, 2, 5]


def test_minima_have_places_whatever_their_score():
    candidates = [water_cluster(3, seed=s) for s in range(5)]
    for k, atoms in enumerate(candidates):
        atoms.info.update(sample="minimum" if k < 3 else "md", trajectory=str(k))
    scores = np.array([0.01, 0.03, 0.02, 0.5, 0.4])
    rule = Selection(n=3, low=0.1, high=2.0, minima=2)
    assert select(candidates, scores, rule) == [1, 2, 3]  # the two most uncertain minima, then by score
    assert select(candidates, scores, Selection(n=3, low=0.1, high=2.0)) == [3, 4]  # no places: minima below low


def test_minima_places_go_to_each_size_before_any_second():
    candidates = [water_cluster(n, seed=s) for n, s in [(6, 0), (6, 1), (6, 2), (3, 3), (3, 4), (2, 5)]]
    for k, atoms in enumerate(candidates):
        atoms.info.update(sample="minimum", trajectory=str(k))
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.3, 0.1])  # by score alone: all three hexamers first
    assert select(candidates, scores, Selection(n=3, low=0.0, high=2.0, minima=3)) == [0, 4, 5]
    assert select(candidates, scores, Selection(n=5, low=0.0, high=2.0, minima=5)) == [0, 4, 5, 1, 3]


def test_per_size_cap_spreads_the_budget_over_sizes():
    candidates = [water_cluster(n, seed=s) for n, s in [(4, 0), (4, 1), (4, 2), (2, 3), (4, 4), (2, 5)]]
    for k, atoms in enumerate(candidates):
        atoms.info["trajectory"] = str(k)
    scores = np.array([0.9, 0.8, 0.7, 0.2, 0.6, 0.1])  # the big clusters score highest
    assert select(candidates, scores, Selection(n=4, low=0.0, high=2.0)) == [0, 1, 2, 4]
    assert select(candidates, scores, Selection(n=4, low=0.0, high=2.0, per_size=2)) == [0, 1, 3, 5]


def test_fingerprint_ignores_rotation_translation_and_order():
    atoms = water_cluster(3, seed=9)
    moved = rotated(atoms, random_rotation(1), shift=(1, 2, 3))[np.random.default_rng(0).permutation(len(atoms))]
    np.testing.assert_allclose(fingerprint(moved), fingerprint(atoms), atol=1e-10)


def test_a_replica_the_judge_distrusts_stops_alone():
    """The kept frames are judged by ``spread`` (a committee's, in equiprop learn); a large spread stops that replica."""
    settings = MDSettings(temperature=50.0, duration_fs=6.0, interval_fs=2.0, friction_per_fs=0.0)
    judged = []

    def spread(frames):
        judged.append(len(frames))
        return [np.full(len(a), 0.5 if len(a) == 6 else 3.0) for a in frames]  # the trimer is distrusted

    runs = run_replicas([dimer(2.9), water_cluster(3, seed=2)], Free(), settings, seed=0, max_forces_std=1.5, spread=spread)
    assert runs[0].stopped is None and len(runs[0].frames) == 3
    assert runs[1].stopped == "at 2 fs: force spread 3.00 eV/A > 1.5" and runs[1].frames == []
    assert judged == [2, 1, 1]  # every kept interval is judged, only for the replicas still running


class Squeeze(Calculator):
    """Accelerates the two molecules of a dimer towards each other, rigidly: a hole of a model, made on purpose."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        forces, masses = np.zeros((len(self.atoms), 3)), self.atoms.get_masses()
        for start in range(0, len(self.atoms), 6):  # each replica: atoms 0-2 one water, 3-5 the other
            forces[start : start + 3, 0] = 0.1 * masses[start : start + 3]  # eV/A: 0.1 eV/A/amu for every atom
            forces[start + 3 : start + 6, 0] = -0.1 * masses[start + 3 : start + 6]
        self.results = {"energy": 0.0, "forces": forces}


def test_a_collapsing_replica_keeps_its_last_frame_in_bounds():
    settings = MDSettings(temperature=10.0, duration_fs=80.0, interval_fs=40.0, check_fs=5.0, friction_per_fs=0.0)
    (run,) = run_replicas([dimer(2.35)], Squeeze(), settings, seed=0)
    assert "heavy atoms" in run.stopped and len(run.frames) == 1
    edge = run.frames[0]
    assert edge.info["md_edge"] and edge.info["md_time_fs"] < 40  # between kept frames
    assert 2.1 <= min_heavy_distance(edge) < 2.3
