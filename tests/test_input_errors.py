"""Bad input raises InputError naming the structure and what is wrong; edge cases predict."""

import numpy as np
import pytest
import torch
from ase import Atoms

from conftest import make_model, water_cluster
from equiprop import InputError
from equiprop.data import read_labels
from equiprop.keys import Property


@pytest.fixture(scope="module")
def model():
    return make_model("so3net", torch.float64)


def frames_with(bad: Atoms, position: int = 1):
    frames = [water_cluster(1), water_cluster(2)]
    frames.insert(position, bad)
    return frames


def test_unknown_element(model):
    methane = Atoms("CH4", positions=np.random.default_rng(0).normal(size=(5, 3)) * 2)
    with pytest.raises(InputError, match=r"structure 1 of in\.xyz: element 'C' \(atom 0\) is not in the model's type map \['H', 'O'\]"):
        model.predict(frames_with(methane), source="in.xyz")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_position(model, value):
    bad = water_cluster(2)
    bad.positions[4, 1] = value
    with pytest.raises(InputError, match=r"structure 2: atom 4 has a non-finite position"):
        model.predict(frames_with(bad, 2))


def test_atoms_at_the_same_position(model):
    bad = water_cluster(2)
    bad.positions[5] = bad.positions[1]
    with pytest.raises(InputError, match=r"structure 0: atoms (1 and 5|5 and 1) are at the same position"):
        model.predict(frames_with(bad, 0))


def test_atom_on_a_periodic_image(model):
    bad = Atoms("H2", positions=[[0, 0, 0], [4.0, 0.5, 0.5]], cell=[4.0, 5.0, 5.0], pbc=True)
    bad.positions[1] = [4.0, 0.0, 0.0]  # the image of atom 0 one cell over
    with pytest.raises(InputError, match="same position"):
        model.predict([bad])


def test_empty_structure_list(model):
    with pytest.raises(InputError, match="no structures given"):
        model.predict([])


def test_bad_total_charge(model):
    bad = water_cluster(1)
    bad.info["charge"] = "plus one"
    with pytest.raises(InputError, match=r"structure 1: info\['charge'\] = 'plus one' is not a number"):
        model.predict(frames_with(bad))


def test_periodic_without_cell(model):
    bad = water_cluster(1)
    bad.pbc = True
    with pytest.raises(InputError, match="periodic along cell vector 0, but that vector is zero"):
        model.predict([bad])


def labelled(**info):
    frame = water_cluster(1)
    frame.info.update({"dft_energy": -2080.0, "dft_dipole": np.array([0.1, 0.2, 0.3])})
    frame.arrays["dft_hirshfeld"] = np.array([-0.3, 0.15, 0.15])
    frame.info.update(info)
    return frame


ALL = [Property.ENERGY, Property.DIPOLE, Property.CHARGES]


def test_labels_read_when_good():
    labels = read_labels([labelled(), labelled()], ALL, source="d.xyz")
    assert labels[Property.DIPOLE][1].tolist() == [0.1, 0.2, 0.3]


@pytest.mark.parametrize(
    "info, message",
    [
        ({"dft_energy": "lots"}, r"structure 1 of d\.xyz: label 'dft_energy' is not numeric"),
        ({"dft_energy": np.array([1.0, 2.0])}, r"structure 1 of d\.xyz: label 'dft_energy' has shape \(2,\), expected \(\)"),
        ({"dft_dipole": np.array([0.1, 0.2])}, r"structure 1 of d\.xyz: label 'dft_dipole' has shape \(2,\), expected \(3,\)"),
        ({"dft_energy": np.nan}, r"structure 1 of d\.xyz: label 'dft_energy' has non-finite values"),
    ],
)
def test_bad_structure_labels(info, message):
    with pytest.raises(InputError, match=message):
        read_labels([labelled(), labelled(**info)], ALL, source="d.xyz")


def test_bad_and_missing_atom_labels():
    bad = labelled()
    bad.arrays["dft_forces"] = np.zeros((3, 2))
    with pytest.raises(InputError, match=r"structure 0: label 'dft_forces' has shape \(3, 2\), expected \(3, 3\)"):
        read_labels([bad], [Property.FORCES])
    with pytest.raises(InputError, match=r"structure 0: no forces label: key 'dft_forces' is not in atoms.arrays"):
        read_labels([labelled()], [Property.FORCES])
    read_labels([labelled()], [Property.ENERGY])  # labels that are not requested may be missing


def test_edge_cases_predict(model):
    single_atom = Atoms("O", positions=[[0, 0, 0]])
    lonely_atom = water_cluster(1) + Atoms("H", positions=[[20.0, 0, 0]])
    no_neighbours = Atoms("OH", positions=[[0, 0, 0], [10.0, 0, 0]])
    far_apart = water_cluster(1) + water_cluster(1)
    far_apart.positions[3:] += [1e4, -2e4, 5e3]
    frames = [single_atom, lonely_atom, no_neighbours, far_apart]
    p = model.predict(frames)
    assert all(np.isfinite(p[key]).all() for key in ("energy", "dipole"))
    assert [len(q) for q in p["charges"]] == [1, 4, 2, 6]
    assert np.allclose(p["forces"][0], 0) and np.allclose(p["forces"][2], 0)
    assert np.allclose(p["forces"][1][3], 0)  # the lonely atom feels nothing
    assert abs(p["energy"][3] - 2 * model.predict([water_cluster(1)])["energy"][0]) < 1e-10
    for q in p["charges"]:
        assert abs(q.sum()) < 1e-10
