"""PySCF labeller: reproduces the shipped labels; resumes, skips and refuses as promised."""

import numpy as np
import pytest
from ase.build import molecule
from ase import Atoms

import ase.io
from equiprop import InputError, datasets
from equiprop.cli.main import main
from equiprop.labelling.clusters import ClusterRecipe, make_clusters
from equiprop.labelling.pyscf_labels import DFTLabels, compute_labels
from equiprop.labelling.run import label_file
from equiprop.labelling.settings import DFTSettings

pytest.importorskip("pyscf")


def test_relabel_shipped_structures():
    """Two dimers from the shipped data, recomputed: energy and dipole to 1e-4, charges to 5e-3."""
    frames = datasets.water_pbe0()
    for k in (0, 8):  # sizes cycle 2..9: both are water dimers
        ref, new = frames[k], compute_labels(frames[k], DFTSettings(), k)
        assert abs(new.energy - ref.info["dft_energy"]) < 1e-4
        assert np.abs(new.dipole - ref.info["dft_dipole"]).max() < 1e-4
        assert np.abs(new.charges - ref.arrays["dft_hirshfeld"]).max() < 5e-3
        assert np.abs(new.forces - ref.arrays["dft_forces"]).max() < 1e-3


def test_single_water_against_published_hirshfeld():
    labels = compute_labels(molecule("H2O"), DFTSettings())
    oxygen, hydrogens = labels.charges[0], labels.charges[1:]
    assert abs(oxygen - (-0.32)) < 0.03  # published Hirshfeld charge of O in water: about -0.3 e
    assert np.allclose(hydrogens, -oxygen / 2, atol=1e-6)
    assert abs(np.linalg.norm(labels.dipole) - 0.4213) < 2e-3  # the data README's value (2.02 D)


def test_charged_and_open_shell():
    hydroxide = Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]], info={"charge": -1})
    radical = Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]], info={"spin": 1})
    for atoms, total in ((hydroxide, -1.0), (radical, 0.0)):
        labels = compute_labels(atoms, DFTSettings())
        assert abs(labels.charges.sum() - total) < 1e-8
        assert np.isclose(labels.forces[:, 0].sum(), 0, atol=1e-4)  # Newton's third law
    with pytest.raises(InputError, match=r"structure 0: PySCF rejects the structure"):
        compute_labels(Atoms("OH", positions=[[0, 0, 0], [0.97, 0, 0]]), DFTSettings())  # odd electrons, spin 0
    with pytest.raises(InputError, match=r"info\['charge'\] = 0.5 is not an integer"):
        compute_labels(Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]], info={"charge": 0.5}), DFTSettings())


def fake_compute(fail_on=(), interrupt_on=()):
    calls = []

    def compute(atoms, settings, index, source):
        calls.append(index)
        if index in interrupt_on:
            raise KeyboardInterrupt
        if index in fail_on:
            return None
        n = len(atoms)
        return DFTLabels(energy=-float(index), forces=np.zeros((n, 3)), dipole=np.ones(3), charges=np.zeros(n), seconds=0.0)

    compute.calls = calls
    return compute


@pytest.fixture
def structures(tmp_path):
    path = tmp_path / "in.xyz"
    ase.io.write(path, make_clusters("H2O", [2, 3], count=4, seed=1))
    return path


def test_resume_after_interrupt(structures, tmp_path):
    out = tmp_path / "out.xyz"
    with pytest.raises(KeyboardInterrupt):
        label_file(structures, out, compute=fake_compute(interrupt_on={2}), log=lambda m: None)
    assert len(ase.io.read(out, ":")) == 2
    messages, compute = [], fake_compute()
    report = label_file(structures, out, compute=compute, log=messages.append)
    assert compute.calls == [2, 3] and report.resumed == 2
    assert [f.info["dft_energy"] for f in ase.io.read(out, ":")] == [0.0, -1.0, -2.0, -3.0]
    assert any("resuming" in m for m in messages)


def test_incomplete_last_frame_is_dropped(structures, tmp_path):
    out = tmp_path / "out.xyz"
    label_file(structures, out, compute=fake_compute(), log=lambda m: None)
    text = out.read_text().splitlines(keepends=True)
    out.write_text("".join(text[: len(text) - 4]))  # cut into the last frame
    messages, compute = [], fake_compute()
    label_file(structures, out, compute=compute, log=messages.append)
    assert compute.calls == [3] and len(ase.io.read(out, ":")) == 4
    assert any("incomplete last frame" in m for m in messages)


def test_unconverged_frames_are_reported_not_written(structures, tmp_path):
    out = tmp_path / "out.xyz"
    report = label_file(structures, out, compute=fake_compute(fail_on={1}), log=lambda m: None)
    assert report.skipped == [1] and report.written == [0, 2, 3]
    assert [f.info["source_index"] for f in ase.io.read(out, ":")] == [0, 2, 3]


def test_foreign_output_is_never_touched(structures, tmp_path):
    foreign = tmp_path / "notes.xyz"
    ase.io.write(foreign, [molecule("CH4")])
    before = foreign.read_text()
    with pytest.raises(InputError, match="was not labelled from structure"):
        label_file(structures, foreign, compute=fake_compute(), log=lambda m: None)
    text_file = tmp_path / "notes.txt"
    text_file.write_text("my thesis\n")
    with pytest.raises(InputError, match="not a file written by 'equiprop label'"):
        label_file(structures, text_file, compute=fake_compute(), log=lambda m: None)
    assert foreign.read_text() == before and text_file.read_text() == "my thesis\n"
    with pytest.raises(InputError, match="overwrite the input"):
        label_file(structures, structures, compute=fake_compute(), log=lambda m: None)


def test_make_clusters_follows_the_recipe():
    recipe = ClusterRecipe()
    clusters = make_clusters("H2O", [2, 3, 4], count=6, seed=0)
    assert [len(c) // 3 for c in clusters] == [2, 3, 4, 2, 3, 4]
    for cluster in clusters:
        oxygens = cluster.positions[cluster.numbers == 8]
        gaps = np.linalg.norm(oxygens[:, None] - oxygens[None], axis=-1) + np.eye(len(oxygens)) * 99
        assert gaps.min() >= recipe.min_anchor_distance - 0.3  # noise moves atoms by ~0.04 A
        assert (gaps.min(axis=1) <= recipe.contact_distance + 0.3).all()
    again = make_clusters("H2O", [2, 3, 4], count=6, seed=0)
    assert all(np.array_equal(a.positions, b.positions) for a, b in zip(clusters, again))


def test_cli_label_and_make_clusters(tmp_path, capsys):
    path = tmp_path / "c.xyz"
    assert main(["make-clusters", "--n", "1", "--count", "1", str(path)]) == 0
    assert main(["make-clusters", "--n", "1", "--count", "1", str(path)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["make-clusters", "--n", "two", str(tmp_path / "d.xyz")]) == 2
    out = tmp_path / "labelled.xyz"
    assert main(["label", str(path), str(out)]) == 0
    frame = ase.io.read(out)
    assert {"dft_energy", "dft_dipole"} <= set(frame.info) and {"dft_forces", "dft_hirshfeld"} <= set(frame.arrays)


def _scf(atoms):
    """A converged PBE0/def2-SVP mean field of ``atoms`` (no gradients, no Hirshfeld: the quadrupole needs the density)."""
    from pyscf import dft, gto

    mol = gto.M(atom=[(s, p) for s, p in zip(atoms.get_chemical_symbols(), atoms.positions)], basis="def2-svp",
                unit="Angstrom", charge=int(atoms.info.get("charge", 0)), verbose=0)
    mf = dft.RKS(mol).density_fit()
    mf.xc = "pbe0"
    mf.kernel()
    assert mf.converged
    return mf


def test_quadrupole_point_charge_limit():
    """Li+ and He 10 A apart: about their midpoint, Li+ is a point charge +1 at z = -5 A and He is neutral."""
    from ase.units import Bohr

    from equiprop.labelling.pyscf_labels import quadrupole_moment

    atoms = Atoms("LiHe", positions=[[0, 0, -5.0], [0, 0, 5.0]], info={"charge": 1})
    theta = quadrupole_moment(_scf(atoms), atoms.positions.mean(axis=0) / Bohr)
    arm = np.array([0, 0, -5.0])
    expected = 0.5 * (3 * np.outer(arm, arm) - arm @ arm * np.eye(3))  # e*A^2
    np.testing.assert_allclose(theta, expected, atol=0.02)  # polarisation of each atom by the other: ~1e-2
    assert abs(np.trace(theta)) < 1e-10


def test_quadrupole_rotates_as_a_rank_two_tensor():
    from ase.units import Bohr

    from equiprop.labelling.pyscf_labels import quadrupole_moment

    from conftest import random_rotation

    water, R = molecule("H2O"), random_rotation(7)
    turned = water.copy()
    turned.positions = water.positions @ R.T + (0.3, -1.0, 2.0)
    theta = quadrupole_moment(_scf(water), water.positions.mean(axis=0) / Bohr)
    theta_turned = quadrupole_moment(_scf(turned), turned.positions.mean(axis=0) / Bohr)
    np.testing.assert_allclose(theta_turned, R @ theta @ R.T, atol=1e-5)
    assert np.abs(theta).max() > 0.1  # water has a real quadrupole (about 0.3-0.6 e*A^2 here)


def test_label_on_cuda_without_a_gpu_is_a_one_line_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/test_cuda_graphs.py style GPU checks cover --device cuda")
    ase.io.write(tmp_path / "w.xyz", molecule("H2O"))
    assert main(["label", str(tmp_path / "w.xyz"), str(tmp_path / "out.xyz"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no CUDA GPU" in err and "\n" not in err
    assert not (tmp_path / "out.xyz").exists() or (tmp_path / "out.xyz").stat().st_size == 0


def test_a_periodic_input_is_an_error_before_anything_is_computed(tmp_path, capsys):
    """Gas-phase labels written onto a cell would look periodic: the labeller refuses cells."""
    frames = [molecule("H2O"), molecule("H2O")]
    frames[1].cell, frames[1].pbc = np.eye(3) * 6.0, True
    ase.io.write(tmp_path / "w.xyz", frames)
    compute = fake_compute()
    with pytest.raises(InputError, match=r"structure 1 of .*w.xyz: periodic"):
        label_file(tmp_path / "w.xyz", tmp_path / "out.xyz", compute=compute, log=lambda m: None)
    assert compute.calls == [] and not (tmp_path / "out.xyz").exists()
    assert main(["label", str(tmp_path / "w.xyz"), str(tmp_path / "out.xyz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "periodic" in err and "pbc=False" in err and "\n" not in err


def test_polarizability_rotates_as_a_tensor_and_does_not_depend_on_the_field():
    """Finite-field alpha of water: symmetric, positive, R alpha R^T under rotation, the same for two field strengths."""
    from ase.units import Bohr

    from conftest import random_rotation
    from equiprop.labelling.pyscf_labels import polarizability

    water, R = molecule("H2O"), random_rotation(3)
    turned = water.copy()
    turned.positions = water.positions @ R.T + (1.0, 0.5, -2.0)
    mf = _scf(water)
    centre = water.positions.mean(axis=0) / Bohr
    alpha = polarizability(mf, centre, 0.001)
    np.testing.assert_allclose(alpha, alpha.T, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(alpha) > 0.3)  # A^3; PBE0/def2-SVP: 0.46, 0.80, 1.07 (no diffuse functions)
    np.testing.assert_allclose(polarizability(mf, centre, 0.002), alpha, rtol=2e-4, atol=2e-4)
    alpha_turned = polarizability(_scf(turned), turned.positions.mean(axis=0) / Bohr, 0.001)
    np.testing.assert_allclose(alpha_turned, R @ alpha @ R.T, atol=2e-4)  # the DFT grid turns with the axes, not the molecule


def test_label_polarizability_flag_writes_the_key(tmp_path):
    path = tmp_path / "water.xyz"
    molecule("H2O").write(path)
    out = tmp_path / "labelled.xyz"
    assert main(["label", str(path), str(out), "--polarizability"]) == 0
    frame = ase.io.read(out)
    alpha = np.asarray(frame.info["dft_polarizability"]).reshape(3, 3)
    assert np.trace(alpha) / 3 == pytest.approx(0.777, abs=0.01)  # isotropic, A^3 (PBE0/def2-SVP; experiment 1.47)
    assert "dft_quadrupole" in frame.info and "dft_energy" in frame.info


def test_ion_clusters_hold_one_ion_and_its_charge(tmp_path):
    from equiprop.labelling.clusters import IONS

    for ion, formula, charge in (("H3O+", "H7O3", 1), ("OH-", "H5O3", -1)):
        clusters = make_clusters("H2O", [2, 5], count=4, seed=2, ion=ion)
        assert clusters[0].get_chemical_formula() == formula and clusters[0].info["charge"] == charge
        for cluster in clusters:
            n_ion = len(IONS[ion][0])
            oxygens = [0] + list(range(n_ion, len(cluster), 3))  # the ion's O first, then each water's
            gaps = np.linalg.norm(cluster.positions[oxygens][:, None] - cluster.positions[oxygens][None], axis=-1)
            assert gaps[np.triu_indices(len(oxygens), 1)].min() > 2.5  # the recipe's O-O spacing (less the noise)
    out = tmp_path / "ions.xyz"
    assert main(["make-clusters", "--ion", "H3O+", "--n", "1-3", "--count", "3", str(out)]) == 0
    assert [a.info["charge"] for a in ase.io.read(out, ":")] == [1, 1, 1]


def test_a_molecule_apart_sits_at_the_drawn_distance(tmp_path):
    """``--apart``: one more rigid water whose closest atom is MIN-MAX from the cluster; the cluster is unchanged."""
    plain = make_clusters("H2O", [1, 2], count=6, seed=4, ion="H3O+")
    apart = make_clusters("H2O", [1, 2], count=6, seed=4, ion="H3O+", apart=(4.5, 9.0))
    for before, after in zip(plain, apart):
        n = len(before)
        np.testing.assert_array_equal(after.positions[:n], before.positions)
        assert after.get_chemical_symbols()[n:] == ["O", "H", "H"] and after.info["charge"] == 1
        gap = np.linalg.norm(after.positions[:n, None] - after.positions[None, n:], axis=-1).min()
        assert gap == pytest.approx(after.info["apart"], abs=1e-3) and 4.5 <= gap <= 9.0
        bonds = np.linalg.norm(after.positions[n + 1:] - after.positions[n], axis=1)
        assert np.all(np.abs(bonds - 0.97) < 0.2)  # a water, noise on it
    assert len({round(a.info["apart"], 2) for a in apart}) == 6  # drawn, not fixed
    out = tmp_path / "apart.xyz"
    assert main(["make-clusters", "--ion", "OH-", "--n", "1", "--count", "2", "--apart", "5-6", str(out)]) == 0
    assert main(["make-clusters", "--n", "1", "--apart", "6-5", str(tmp_path / "bad.xyz")]) == 2
