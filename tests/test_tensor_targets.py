"""Tensor targets: the quadrupole (traceless, from charges, atomic dipoles and l=2 features) and the polarizability
(isotropic and arm terms, plus l=2 features), symmetric tensors that turn as R T R^T."""

import numpy as np
import pytest
import torch

from conftest import SMALL, assert_close, make_model, random_rotation, water_cluster
from equiprop import datasets
from equiprop.cli.main import main
from equiprop.data.labels import read_label
from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.nn.readout import point_quadrupoles

TARGETS = ["charges", "dipole", "energy", "quadrupole", "polarizability"]


@pytest.mark.parametrize("kind", ["so3net", "schnet"])
def test_quadrupole_rotates_translates_permutes_and_splits_like_a_tensor(kind, dtype):
    model = make_model(kind, dtype=dtype, targets=TARGETS)
    atoms, other = water_cluster(3, seed=1), water_cluster(4, seed=2)
    theta = model.predict([atoms])["quadrupole"][0]
    assert np.abs(theta).max() > 0.05
    assert_close(theta, theta.T, dtype)
    assert abs(np.trace(theta)) < (1e-10 if dtype == torch.float64 else 1e-5)
    rotation, perm = random_rotation(5), np.random.default_rng(0).permutation(len(atoms))
    moved = atoms[perm]
    moved.positions = moved.positions @ rotation.T + (4.0, -2.0, 7.0)
    assert_close(model.predict([moved])["quadrupole"][0], rotation @ theta @ rotation.T, dtype)
    together = model.predict([atoms, other])["quadrupole"]  # a batch is its structures
    assert_close(together[0], theta, dtype)
    assert_close(together[1], model.predict([other])["quadrupole"][0], dtype)


@pytest.mark.parametrize("kind", ["so3net", "schnet"])
def test_polarizability_is_a_symmetric_tensor_that_turns_with_the_structure(kind, dtype):
    model = make_model(kind, dtype=dtype, targets=TARGETS)
    with torch.no_grad():  # the head starts at zero: make it random
        torch.nn.init.normal_(model.polarizability_head.net[-1].weight, std=0.5)
    atoms, other = water_cluster(3, seed=6), water_cluster(2, seed=7)
    alpha = model.predict([atoms])["polarizability"][0]
    assert np.abs(alpha - np.trace(alpha) / 3 * np.eye(3)).max() > 1e-3  # anisotropic
    assert_close(alpha, alpha.T, dtype)
    rotation, perm = random_rotation(8), np.random.default_rng(1).permutation(len(atoms))
    moved = atoms[perm]
    moved.positions = moved.positions @ rotation.T + (-3.0, 1.0, 2.0)
    assert_close(model.predict([moved])["polarizability"][0], rotation @ alpha @ rotation.T, dtype)
    together = model.predict([other, atoms])["polarizability"]
    assert_close(together[1], alpha, dtype)
    if kind == "so3net":
        assert model.polarizability_tensor_head is not None


def test_the_parts_are_the_charges_dipoles_and_atomic_quadrupoles():
    schnet = make_model("schnet", targets=TARGETS)
    atoms = water_cluster(2, seed=4)
    out = schnet.predict([atoms])
    arms = atoms.positions - atoms.positions.mean(axis=0)  # about the geometric centre, as the labeller
    expected = sum(0.5 * q * (3 * np.outer(r, r) - r @ r * np.eye(3)) for q, r in zip(out["charges"][0], arms))
    np.testing.assert_allclose(out["quadrupole"][0], expected, atol=1e-12)  # SchNet: point charges only
    # a point dipole is the limit of two charges +-q a distance d apart, with q d = mu
    mu, where, d = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64), torch.tensor([[1.0, 2.0, -0.5]], dtype=torch.float64), 1e-5
    pair = point_quadrupoles(torch.tensor([1.0, -1.0], dtype=torch.float64) / d, None,
                             torch.cat([where + 0.5 * d * mu, where - 0.5 * d * mu])).sum(0)
    np.testing.assert_allclose(point_quadrupoles(None, mu, where)[0], pair, atol=1e-6)
    so3net = make_model("so3net", targets=TARGETS)
    assert so3net.quadrupole_head is not None and make_model("so3net", targets=TARGETS, lmax=1).quadrupole_head is None


def test_quadrupole_labels_are_read_as_3x3_and_refused_for_cells():
    frame = datasets.water_pbe0_sampled()[0]
    theta = read_label(frame, Property.QUADRUPOLE, "dft_quadrupole")  # stored as 9 numbers
    assert theta.shape == (3, 3) and abs(np.trace(theta)) < 1e-8
    periodic = frame.copy()
    periodic.set_cell([20, 20, 20])
    periodic.pbc = True
    with pytest.raises(InputError, match="periodic"):
        read_label(periodic, Property.QUADRUPOLE, "dft_quadrupole")


def test_train_evaluate_and_check_a_quadrupole_model(tmp_path, capsys):
    import ase.io

    data = tmp_path / "sampled.xyz"
    ase.io.write(data, datasets.water_pbe0_sampled()[:40])
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--targets", "charges,dipole,quadrupole", "--epochs", "2",
                 "--out", str(out), *SMALL, "--lmax", "2"]) == 0
    assert (out / "parity_quadrupole.png").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(out / "best.pt"), "--json"]) == 0
    assert "quadrupole" in capsys.readouterr().out
    assert main(["check", str(out / "best.pt")]) == 0
    assert main(["train", "--targets", "quadrupole", "--epochs", "1", "--out", str(tmp_path / "bad"), *SMALL]) == 2
    assert main(["train", "--data", str(data), "--targets", "polarizability", "--epochs", "1",  # no such labels
                 "--out", str(tmp_path / "bad2"), *SMALL]) == 2


def test_train_a_polarizability_model(tmp_path):
    """On labels of a known tensor field: alpha = 0.3 n_atoms I + a shape term, learnable from positions."""
    import ase.io

    frames = datasets.water_pbe0_sampled()[:30]
    for atoms in frames:
        arms = atoms.positions - atoms.positions.mean(axis=0)
        alpha = 0.3 * len(atoms) * np.eye(3) + 0.05 * sum(3 * np.outer(r, r) - r @ r * np.eye(3) for r in arms)
        atoms.info["dft_polarizability"] = alpha.reshape(9)
    data = tmp_path / "alpha.xyz"
    ase.io.write(data, frames)
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--targets", "polarizability", "--epochs", "3", "--out", str(out),
                 *SMALL]) == 0
    assert (out / "parity_polarizability.png").is_file()
    assert main(["check", str(out / "best.pt")]) == 0
