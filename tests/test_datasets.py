"""The shipped PBE0 water data, splits and label keys."""

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from conftest import water_cluster
from equiprop import datasets
from equiprop.data import LabelKeys, read_labels
from equiprop.data.split import split_indices, structure_kind
from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.sampling.guard import min_heavy_distance

ALL = [Property.ENERGY, Property.DIPOLE, Property.CHARGES, Property.FORCES]


def test_water_pbe0_has_all_four_labels():
    frames = datasets.water_pbe0()
    assert len(frames) == 400
    labels = read_labels(frames, ALL, LabelKeys(), source="water_pbe0")
    assert sorted({len(a) for a in frames}) == list(range(6, 28, 3))
    assert all(set(a.get_chemical_symbols()) == {"H", "O"} for a in frames)
    assert max(abs(q.sum()) for q in labels[Property.CHARGES]) < 1e-6
    energies_per_water = np.array([e / (len(a) / 3) for e, a in zip(labels[Property.ENERGY], frames)])
    assert np.ptp(energies_per_water) < 1.0 and -2076 < energies_per_water.mean() < -2075  # eV per H2O
    oxygen = np.concatenate([q[a.numbers == 8] for q, a in zip(labels[Property.CHARGES], frames)])
    assert -0.45 < oxygen.mean() < -0.25
    assert datasets.water_pbe0()[0] is not frames[0]  # fresh copies


def test_water_pbe0_sampled_is_real_water_with_the_same_labels():
    frames = datasets.water_pbe0_sampled()
    labels = read_labels(frames, ALL, LabelKeys(), source="water_pbe0_sampled")
    assert {a.info["sample"] for a in frames} == {"md", "minimum"}
    sizes = {len(a) // 3 for a in frames}
    assert sizes <= set(range(2, 13)) and len(sizes) >= 9  # 2-12 waters
    assert {a.info["md_temperature"] for a in frames if a.info["sample"] == "md"} <= {200.0, 300.0, 400.0}
    assert max(abs(q.sum()) for q in labels[Property.CHARGES]) < 1e-6
    per_water = np.array([e / (len(a) / 3) for e, a in zip(labels[Property.ENERGY], frames)])
    assert -2076 < per_water.mean() < -2075 and np.ptp(per_water) < 1.0  # same method as water_pbe0
    for atoms in frames:  # traceless symmetric quadrupoles
        theta = np.asarray(atoms.info["dft_quadrupole"]).reshape(3, 3)
        assert abs(np.trace(theta)) < 1e-6 and np.allclose(theta, theta.T)
    closest = min(min_heavy_distance(a) for a in frames)
    assert 2.0 < closest < min(min_heavy_distance(a) for a in datasets.water_pbe0())  # the repulsive wall random data lack
    assert len(datasets.water()) == 400 + len(frames)


def test_water_pbe0_ions_are_charged_clusters_on_the_same_energy_scale():
    frames = datasets.water_pbe0_ions()
    labels = read_labels(frames, ALL, LabelKeys(), source="water_pbe0_ions")
    ions = [a.info["ion"] for a in frames if a.info["sample"] == "random"]
    assert ions.count("H3O+") == ions.count("OH-") == 150
    for atoms, q in zip(frames, labels[Property.CHARGES]):
        charge = {"H3O+": 1, "OH-": -1}[atoms.info["ion"]]
        assert atoms.info["charge"] == charge and abs(q.sum() - charge) < 1e-6
        n_o, n_h = (atoms.numbers == 8).sum(), (atoms.numbers == 1).sum()
        assert n_h == 2 * n_o + charge and 2 <= n_o <= 9  # the ion and 1-8 waters
    assert {structure_kind(a) for a in frames} == {"random +1", "random -1", "apart +1", "apart -1"}
    # same method as the neutral set: an ion's energy differs from n waters' by a proton's worth, not by hundreds of eV
    per_oxygen = np.array([e / (a.numbers == 8).sum() for e, a in zip(labels[Property.ENERGY], frames)])
    assert -2081 < per_oxygen.min() and per_oxygen.max() < -2060  # H2O: -2075.5 eV
    assert len(datasets.water_with_ions()) == len(datasets.water()) + len(frames)


def test_water_apart_from_an_ion_is_beyond_the_cutoff_and_neutral_next_to_a_cation():
    apart = [a for a in datasets.water_pbe0_ions() if a.info["sample"] == "apart"]
    assert len(apart) == 77
    for atoms in apart:  # the separated water is the last three atoms, info["apart"] from the rest
        assert list(atoms.numbers[-3:]) == [8, 1, 1]
        gap = np.linalg.norm(atoms.positions[-3:, None] - atoms.positions[None, :-3], axis=-1).min()
        assert abs(gap - atoms.info["apart"]) < 1e-3 and 4.5 <= gap <= 9.0
    far = {ion: [a.arrays["dft_hirshfeld"][-3:].sum() for a in apart if a.info["ion"] == ion] for ion in ("H3O+", "OH-")}
    assert max(abs(q) for q in far["H3O+"]) < 1e-3  # PBE0 keeps a far water neutral next to H3O+
    assert 0.01 < max(abs(q) for q in far["OH-"]) < 0.2  # and leaks some of OH-'s charge (README: delocalization)


def test_split_is_deterministic_and_disjoint():
    a, b = split_indices(400, val=0.1, test=0.1, seed=3), split_indices(400, val=0.1, test=0.1, seed=3)
    assert all(np.array_equal(getattr(a, part), getattr(b, part)) for part in ("train", "val", "test"))
    assert (len(a.train), len(a.val), len(a.test)) == (320, 40, 40)
    assert np.array_equal(np.sort(np.concatenate([a.train, a.val, a.test])), np.arange(400))
    assert not np.array_equal(a.test, split_indices(400, seed=4).test)
    assert len(split_indices(5, val=0.01, test=0.01).val) == 1
    with pytest.raises(ValueError, match="too few"):
        split_indices(2, val=0.4, test=0.4)
    with pytest.raises(ValueError, match="val"):
        split_indices(10, val=0.6, test=0.5)


def test_label_alternatives():
    frame = water_cluster(1)
    frame.info["REF_energy"] = -5.0
    frame.arrays["charges"] = np.array([-0.4, 0.2, 0.2])
    frame.calc = SinglePointCalculator(frame, dipole=np.array([0.0, 0.0, 0.3]))
    labels = read_labels([frame], [Property.ENERGY, Property.CHARGES, Property.DIPOLE])
    assert labels[Property.ENERGY][0] == -5.0
    assert labels[Property.CHARGES][0][0] == -0.4
    assert labels[Property.DIPOLE][0][2] == 0.3


def test_a_configured_key_never_falls_back_to_another_label():
    frame = water_cluster(1)
    frame.calc = SinglePointCalculator(frame, energy=-5.0)
    assert read_labels([frame], [Property.ENERGY])[Property.ENERGY][0] == -5.0  # default key: calc energy
    with pytest.raises(InputError, match=r"structure 0: no energy label: key 'E_pbe' is not in atoms.info$"):
        read_labels([frame], [Property.ENERGY], LabelKeys(energy="E_pbe"))
    frame.info["E_pbe"] = -6.0
    assert read_labels([frame], [Property.ENERGY], LabelKeys(energy="E_pbe"))[Property.ENERGY][0] == -6.0


def test_held_out_minima_are_not_in_the_shipped_data():
    """data/heldout-minima is a test set: none of its structures (or a near copy) is shipped for training."""
    from pathlib import Path

    from equiprop.data.io import read_structures
    from equiprop.learn.select import fingerprint, rms_difference

    held_out = read_structures(Path(__file__).resolve().parent.parent / "data" / "heldout-minima" / "unlabelled.xyz")
    assert len(held_out) == 18 and all(a.info["sample"] == "minimum" for a in held_out)
    shipped = [fingerprint(a) for a in datasets.water()]
    closest = min(rms_difference(fingerprint(a), s) for a in held_out for s in shipped)
    assert closest > 0.05, f"a shipped frame is within {closest:.3f} A RMS of a held-out minimum"
    # the guard can see a copy: a held-out minimum, rotated and renumbered, is found
    copy = held_out[0][::-1]
    copy.rotate(40, "z")
    assert rms_difference(fingerprint(copy), fingerprint(held_out[0])) < 1e-6
