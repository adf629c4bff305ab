"""Electrostatics from the learned charges: Coulomb's law beyond the cutoff, invariances, forces, batches, charges."""

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms

import equiprop
from conftest import SMALL, assert_close, assert_forces_are_minus_the_gradient, make_model, random_rotation, water_cluster
from equiprop import datasets
from equiprop.cli.main import main
from equiprop.nn.electrostatics import DampedCoulomb, DampedMultipoles
from equiprop.nn.repulsion import COULOMB


def test_two_point_charges_follow_coulombs_law():
    coulomb = DampedCoulomb(sigma=1.0)
    charges = torch.tensor([1.0, -0.5, 0.3, -0.3], dtype=torch.float64)
    positions = torch.tensor([[0, 0, 0], [8.0, 0, 0], [0, 0, 0], [0, 0, 12.0]], dtype=torch.float64)
    structure = torch.tensor([0, 0, 1, 1])  # two structures: no pair across them
    energy = coulomb(charges, positions, structure, 2)
    np.testing.assert_allclose(energy.numpy(), [COULOMB * -0.5 / 8.0, COULOMB * -0.09 / 12.0], rtol=1e-12)
    close = coulomb(charges[:2], torch.tensor([[0, 0, 0], [1e-4, 0, 0]], dtype=torch.float64), structure[:2], 1)
    assert torch.isfinite(close).all()  # damped: finite where two Gaussian charges overlap


def _traceless(rng, n):
    a = rng.normal(size=(n, 3, 3))
    a = a + a.transpose(0, 2, 1)
    return torch.tensor(a - np.trace(a, axis1=1, axis2=2)[:, None, None] / 3 * np.eye(3))


def _reference_multipole_energy(q, mu, theta, positions, structure, sigma):
    """The same energy by nested autograd of the smeared kernel: ``phi_j = q f - mu . grad f + Theta : grad grad f / 3``
    at ``r_i - r_j``, and atom i's energy ``q phi + mu . grad phi + Theta : grad grad phi / 3``."""
    from torch.func import grad, hessian

    def kernel(v):
        r = (v * v).sum().sqrt()
        return torch.erf(r / (np.sqrt(2) * sigma)) / r

    total = torch.zeros(int(structure.max()) + 1, dtype=torch.float64)
    for i in range(len(q)):
        for j in range(len(q)):
            if i == j or structure[i] != structure[j]:
                continue

            def phi(x, j=j):
                v = x - positions[j]
                return q[j] * kernel(v) - mu[j] @ grad(kernel)(v) + (theta[j] * hessian(kernel)(v)).sum() / 3

            x = positions[i]
            energy = q[i] * phi(x) + mu[i] @ grad(phi)(x) + (theta[i] * hessian(phi)(x)).sum() / 3
            total[structure[i]] += 0.5 * COULOMB * energy
    return total


def test_multipole_energy_equals_nested_autograd_of_the_smeared_kernel():
    rng = np.random.default_rng(0)
    n = 5
    q = torch.tensor(rng.normal(size=n))
    mu = torch.tensor(rng.normal(size=(n, 3))) * 0.3
    theta = _traceless(rng, n) * 0.2
    positions = torch.tensor(rng.normal(size=(n, 3)) * 1.5)
    structure = torch.tensor([0, 0, 0, 1, 1])
    for sigma in (0.7, 1.0):
        ours = DampedMultipoles(sigma)(q, positions, structure, 2, mu, theta)
        reference = _reference_multipole_energy(q, mu, theta, positions, structure, sigma)
        np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-9)
        no_quadrupoles = _reference_multipole_energy(q, mu, 0 * theta, positions, structure, sigma)
        np.testing.assert_allclose(DampedMultipoles(sigma)(q, positions, structure, 2, mu).numpy(),
                                   no_quadrupoles.numpy(), rtol=1e-9)
        assert not np.allclose(ours.numpy(), no_quadrupoles.numpy(), rtol=1e-3)  # the quadrupoles count


def test_point_multipoles_of_distant_molecules_equal_their_point_charges():
    """Two neutral groups of point charges far apart: one site each with the group's dipole and quadrupole
    (about its centre, the quadrupole target's convention) gives the direct Coulomb sum, better with each order."""
    rng = np.random.default_rng(1)
    groups = []
    for shift in ((0.0, 0.0, 0.0), (9.0, 5.0, -4.0)):
        charges = rng.normal(size=4)
        charges -= charges.mean()
        positions = rng.normal(size=(4, 3)) * 0.6 + shift
        groups.append((charges, positions))
    coulomb = DampedCoulomb(0.05)  # point charges where they are 0.3 A or more apart
    energy = lambda q, r: coulomb(torch.tensor(q), torch.tensor(r), torch.zeros(len(q), dtype=torch.long), 1)
    direct = energy(np.concatenate([g[0] for g in groups]), np.concatenate([g[1] for g in groups]))
    direct = direct - energy(*groups[0]) - energy(*groups[1])  # the interaction alone
    sites = []
    for charges, positions in groups:
        centre = positions.mean(0)
        arms = positions - centre
        dipole = (charges[:, None] * arms).sum(0)
        quadrupole = 0.5 * sum(c * (3 * np.outer(a, a) - a @ a * np.eye(3)) for c, a in zip(charges, arms))
        sites.append((centre, dipole, quadrupole))
    centres = torch.tensor(np.array([s[0] for s in sites]))
    dipoles = torch.tensor(np.array([s[1] for s in sites]))
    quadrupoles = torch.tensor(np.array([s[2] for s in sites]))
    zero, one = torch.zeros(2, dtype=torch.float64), torch.zeros(2, dtype=torch.long)
    with_dipoles = DampedMultipoles(0.05)(zero, centres, one, 1, dipoles)
    with_quadrupoles = DampedMultipoles(0.05)(zero, centres, one, 1, dipoles, quadrupoles)
    error_dipoles, error_quadrupoles = abs(float(with_dipoles - direct)), abs(float(with_quadrupoles - direct))
    # 11.5 A apart, groups 0.6 A wide: dipoles alone miss 29% of it, with quadrupoles 1.8% (octupoles on)
    assert error_quadrupoles < 0.1 * error_dipoles
    assert error_quadrupoles < 0.03 * abs(float(direct))


def _separated(distance: float) -> Atoms:
    """Two waters ``distance`` apart along x, far beyond the 3 A cutoff: each one's charges see only itself."""
    first, second = water_cluster(1, seed=1), water_cluster(1, seed=2)
    second.positions += (distance, 0.0, 0.0)
    return first + second


def test_energy_beyond_the_cutoff_is_the_coulomb_energy_of_the_charges():
    model = make_model("so3net", electrostatics="coulomb")
    plain = make_model("so3net")  # the same weights (same seed), no electrostatics
    far, farther = _separated(20.0), _separated(40.0)
    out = {d: model.predict([a]) for d, a in ((20, far), (40, farther))}
    np.testing.assert_allclose(out[20]["charges"][0], out[40]["charges"][0], atol=1e-12)
    q, r = out[20]["charges"][0], far.positions
    pair = sum(COULOMB * q[i] * q[j] / np.linalg.norm(r[i] - r[j]) for i in range(3) for j in range(3, 6))
    q, r = out[40]["charges"][0], farther.positions
    pair_far = sum(COULOMB * q[i] * q[j] / np.linalg.norm(r[i] - r[j]) for i in range(3) for j in range(3, 6))
    assert abs(pair) > 1e-4  # the molecules' dipoles interact
    assert out[20]["energy"][0] - out[40]["energy"][0] == pytest.approx(pair - pair_far, abs=1e-10)
    assert plain.predict([far])["energy"][0] == pytest.approx(plain.predict([farther])["energy"][0], abs=1e-10)


def test_multipole_energy_beyond_the_cutoff_is_that_of_the_predicted_multipoles():
    """Far apart, the model's energy changes exactly by the multipole energy of its own charges, atomic
    dipoles and quadrupoles (the sums of which are its dipole and quadrupole predictions)."""
    model = make_model("so3net", electrostatics="multipole", targets=["charges", "dipole", "quadrupole", "energy"])
    seen = {}
    model.dipole_head.register_forward_hook(lambda m, i, out: seen.__setitem__("mu", out.detach()))
    model.quadrupole_head.register_forward_hook(lambda m, i, out: seen.__setitem__("theta", out.detach()))
    energies, pair = [], []
    for atoms in (_separated(20.0), _separated(40.0)):
        out = model.predict([atoms])
        energies.append(out["energy"][0])
        q, r = torch.tensor(out["charges"][0]), torch.tensor(atoms.positions)
        mu, theta = seen["mu"], seen["theta"]
        assert float(abs(theta).max()) > 1e-3 and float(abs(mu).max()) > 1e-3
        both = DampedMultipoles()(q, r, torch.zeros(6, dtype=torch.long), 1, mu, theta)
        alone = [DampedMultipoles()(q[s], r[s], torch.zeros(3, dtype=torch.long), 1, mu[s], theta[s])
                 for s in (slice(0, 3), slice(3, 6))]
        pair.append(float(both - alone[0] - alone[1]))
    assert abs(pair[0]) > 1e-4
    assert energies[0] - energies[1] == pytest.approx(pair[0] - pair[1], abs=1e-10)


@pytest.mark.parametrize("kind,electrostatics", [("so3net", "coulomb"), ("schnet", "coulomb"), ("so3net", "multipole")])
def test_invariant_differentiable_and_batched_with_electrostatics(kind, electrostatics, dtype):
    targets = ["charges", "dipole", "energy"] + (["quadrupole"] if electrostatics == "multipole" else [])
    model = make_model(kind, dtype=dtype, electrostatics=electrostatics, targets=targets)
    atoms, other = water_cluster(3, seed=3), water_cluster(2, seed=4)
    other.info["charge"] = 1  # charged and neutral structures in one batch
    out = model.predict([atoms])
    rotation = random_rotation(2)
    moved = atoms[np.random.default_rng(3).permutation(len(atoms))]
    moved.positions = moved.positions @ rotation.T + (5.0, -3.0, 1.0)
    assert_close(model.predict([moved])["energy"], out["energy"], dtype)
    together = model.predict([other, atoms])
    assert_close(together["energy"][1], out["energy"][0], dtype)
    assert_close(together["energy"][0], model.predict([other])["energy"][0], dtype)
    assert together["charges"][0].sum() == pytest.approx(1.0, abs=1e-5)
    if dtype == torch.float64:  # forces are minus the gradient: central differences
        assert_forces_are_minus_the_gradient(model, atoms)


def test_ewald_of_a_cluster_in_a_growing_box_approaches_the_open_sum():
    """Tin-foil Ewald (torch-pme) = open-boundary sum - 2 pi k M^2 / (3 V) + images' higher multipoles (-> 0)."""
    from equiprop.nn.ewald import PeriodicCoulomb

    rng = np.random.default_rng(3)
    q = torch.tensor(rng.normal(size=6))
    q = q - q.mean()  # a neutral cell: no background
    x = torch.tensor(rng.normal(size=(6, 3)) * 1.5)
    dipole = (q[:, None] * x).sum(0)
    open_sum = DampedCoulomb(sigma=1.0)(q, x, torch.zeros(6, dtype=torch.long), 1)[0]
    gaps = []
    for length in (30.0, 60.0):
        cell = torch.eye(3, dtype=torch.float64) * length
        periodic = PeriodicCoulomb(sigma=1.0)(q, x + length / 2, cell)
        gaps.append(abs(float(periodic + 2 * np.pi * COULOMB * dipole.dot(dipole) / (3 * length**3) - open_sum)))
    assert abs(float(open_sum)) > 0.1  # not trivially zero
    # the images' quadrupoles fall as L^-5 (without the dipole term the gap would be 0.05 eV at 60 A, as L^-3)
    assert gaps[1] < 2e-3 and gaps[1] < gaps[0] / 20


def test_multipole_ewald_of_a_cluster_in_a_growing_box_approaches_the_open_sum():
    """Charges, dipoles and quadrupoles: tin-foil Ewald = open sum - 2 pi k M^2 / (3 V) + O(L^-5), M = sum q r + mu;
    with charges alone it is torch-pme's sum (also for a charged cell, with its background)."""
    from equiprop.nn.ewald import PeriodicCoulomb, PeriodicMultipoles

    rng = np.random.default_rng(4)
    n = 6
    q = torch.tensor(rng.normal(size=n))
    q = q - q.mean()
    mu, theta = torch.tensor(rng.normal(size=(n, 3))) * 0.3, _traceless(rng, n) * 0.2
    x = torch.tensor(rng.normal(size=(n, 3)) * 1.5)
    dipole = (q[:, None] * x).sum(0) + mu.sum(0)
    open_sum = DampedMultipoles(sigma=1.0)(q, x, torch.zeros(n, dtype=torch.long), 1, mu, theta)[0]
    without_theta = DampedMultipoles(sigma=1.0)(q, x, torch.zeros(n, dtype=torch.long), 1, mu)[0]
    assert abs(float(open_sum - without_theta)) > 0.01  # the quadrupoles count
    gaps = []
    for length in (30.0, 60.0):
        cell = torch.eye(3, dtype=torch.float64) * length
        periodic = PeriodicMultipoles(sigma=1.0)(q, x + length / 2, cell, mu, theta)
        gaps.append(abs(float(periodic + 2 * np.pi * COULOMB * dipole.dot(dipole) / (3 * length**3) - open_sum)))
    assert gaps[1] < 2e-3 and gaps[1] < gaps[0] / 20
    cell = torch.tensor([[7.0, 0.0, 0.0], [1.5, 6.5, 0.0], [-0.8, 0.9, 8.0]], dtype=torch.float64)
    for charges in (q, q + 0.3):  # neutral, and charged (background)
        expected = PeriodicCoulomb(sigma=1.0)(charges, x, cell)
        got = PeriodicMultipoles(sigma=1.0)(charges, x, cell, torch.zeros_like(x))
        assert float(got) == pytest.approx(float(expected), abs=1e-9)


@pytest.mark.parametrize("kind, targets", [("coulomb", ["charges", "dipole", "energy"]),
                                           ("multipole", ["charges", "dipole", "energy", "quadrupole"])])
def test_a_periodic_cell_sums_every_image(kind, targets):
    """A cell's energy is periodic: the same for a supercell per cell, under a shift of every atom and a rotation of
    cell and atoms, and in a batch beside a cluster; its forces and stress are the derivatives."""
    from ase.build import make_supercell
    from ase.calculators.fd import FiniteDifferenceCalculator

    from conftest import periodic_water, rotated

    model = make_model("so3net", electrostatics=kind, targets=targets)
    keys = set(model.state_dict())
    box = periodic_water(seed=5)
    plain = make_model("so3net", targets=targets)
    energy = float(model.predict([box])["energy"][0])
    assert abs(energy - float(plain.predict([box])["energy"][0])) > 1e-3  # the term is there
    assert set(model.state_dict()) == keys  # the Ewald sum holds no state: checkpoints stay loadable
    bigger = make_supercell(box, np.diag([2, 1, 1]))
    assert float(model.predict([bigger])["energy"][0]) == pytest.approx(2 * energy, abs=1e-8)
    moved = rotated(box, random_rotation(4), shift=(0.7, -1.3, 2.9))
    assert float(model.predict([moved])["energy"][0]) == pytest.approx(energy, abs=1e-8)
    batch = model.predict([box, water_cluster(2, seed=6)])
    assert float(batch["energy"][0]) == pytest.approx(energy, abs=1e-8)
    assert float(batch["energy"][1]) == pytest.approx(float(model.predict([water_cluster(2, seed=6)])["energy"][0]),
                                                      abs=1e-8)
    atoms = box.copy()
    atoms.calc = equiprop.EquipropCalculator(model)
    numeric = FiniteDifferenceCalculator(equiprop.EquipropCalculator(model), eps_disp=1e-5, eps_strain=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), numeric.get_forces(box.copy()), atol=1e-6)
    np.testing.assert_allclose(atoms.get_stress(), numeric.get_stress(box.copy()), atol=1e-7)


def test_the_flags_train_and_bad_ones_are_refused(tmp_path):
    with pytest.raises(ValueError, match="choose from"):
        make_model("so3net", electrostatics="ewald")
    with pytest.raises(ValueError, match="atomic dipoles"):
        make_model("schnet", electrostatics="multipole")
    with pytest.raises(ValueError, match="atomic dipoles"):
        make_model("so3net", electrostatics="multipole", targets=["charges", "energy"])
    import ase.io

    data = tmp_path / "water.xyz"
    ase.io.write(data, datasets.water_pbe0()[:24])
    out = tmp_path / "run"
    assert main(["train", "--data", str(data), "--electrostatics", "coulomb", "--epochs", "1", "--out", str(out),
                 *SMALL]) == 0
    reloaded = equiprop.load_model(out / "best.pt")
    assert reloaded.electrostatics is not None
    assert main(["train", "--data", str(data), "--electrostatics", "ewald", "--epochs", "1",
                 "--out", str(tmp_path / "bad"), *SMALL]) == 2


def test_dense_pairs_while_compiling_equal_the_per_structure_pairs(monkeypatch):
    """Compiling or recording a CUDA graph sums every pair of the batch, the other structures' weighted 0;
    padding atoms sit together at the origin (data/padding.py): finite, and they add nothing."""
    rng = np.random.default_rng(2)
    n = 9
    q = torch.tensor(rng.normal(size=n), requires_grad=True)
    mu, theta = torch.tensor(rng.normal(size=(n, 3))) * 0.3, _traceless(rng, n) * 0.2
    positions = torch.tensor(rng.normal(size=(n, 3)) * 2.0)
    positions[6:] = 0.0  # three padding atoms, one structure of their own
    q.data[6:] = 0.0
    structure = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3])
    model = DampedMultipoles()
    eager = model(q, positions, structure, 4, mu, theta)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    dense = model(q, positions, structure, 4, mu, theta)
    torch.testing.assert_close(dense, eager, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(eager).all() and float(eager[2]) == 0.0
    (gradient,) = torch.autograd.grad(dense.sum(), q)
    assert torch.isfinite(gradient).all()


def test_auto_gives_multipoles_to_so3net_dipole_models_of_clusters_and_resumes(slice_file, tmp_path):
    import yaml

    out = tmp_path / "auto"
    args = ["train", "--data", str(slice_file), "--model", "so3net", "--epochs", "1", "--out", str(out), *SMALL]
    assert main(args) == 0
    model = equiprop.load_model(out / "best.pt")
    assert model.electrostatics is not None and model.multipole_electrostatics
    assert yaml.safe_load((out / "config.yaml").read_text())["electrostatics"] == "multipole"
    assert main(["train", "--resume", str(out), "--epochs", "2"]) == 0  # auto matches what it decided
    schnet = tmp_path / "schnet"
    assert main(["train", "--data", str(slice_file), "--model", "schnet", "--epochs", "1", "--out", str(schnet), *SMALL]) == 0
    assert equiprop.load_model(schnet / "best.pt").electrostatics is None
    plain = tmp_path / "plain"
    assert main(["train", "--data", str(slice_file), "--model", "so3net", "--targets", "charges,energy,forces",
                 "--epochs", "1", "--out", str(plain), *SMALL]) == 0
    assert equiprop.load_model(plain / "best.pt").electrostatics is None


def test_auto_gives_formal_charges_and_induction_only_when_the_data_hold_a_charged_structure(slice_file, tmp_path):
    import yaml

    ions = tmp_path / "ions.xyz"
    ase.io.write(ions, ase.io.read(slice_file, ":4") + datasets.water_pbe0_ions()[:2])
    for data, spread, electrostatics in ((slice_file, "uniform", "multipole"), (ions, "formal", "polarizable")):
        out = tmp_path / spread
        assert main(["train", "--data", str(data), "--epochs", "1", "--out", str(out), *SMALL]) == 0
        saved = yaml.safe_load((out / "config.yaml").read_text())
        assert (saved["charge_spread"], saved["electrostatics"]) == (spread, electrostatics)
        model = equiprop.load_model(out / "best.pt")
        assert (model.formal_charges is not None) == (model.induction is not None) == (spread == "formal")
    assert main(["train", "--resume", str(tmp_path / "formal"), "--epochs", "2"]) == 0


def test_compiled_runners_hand_periodic_cells_to_the_eager_model():
    """A compiled runner cannot trace torch-pme's cell-shaped sum: a periodic batch runs eagerly, with the same result
    (no compilation happens here: torch.compile is lazy and never called)."""
    from conftest import periodic_water
    from equiprop.data import collate, frames_to_graphs
    from equiprop.keys import Property
    from equiprop.models.base import needs_eager
    from equiprop.models.compiled import compiled_outputs

    model = make_model("so3net", electrostatics="coulomb", targets=["charges", "dipole", "energy"])
    box = collate(frames_to_graphs([periodic_water(seed=3)], model.type_map, model.cutoff))
    cluster = collate(frames_to_graphs([water_cluster(2, seed=3)], model.type_map, model.cutoff))
    assert needs_eager(model, box) and not needs_eager(model, cluster)
    assert not needs_eager(make_model("so3net", targets=["charges", "dipole", "energy"]), box)
    got = compiled_outputs(model, with_forces=True)(box)
    expected = model(box, compute_forces=True)
    for key in (Property.ENERGY, Property.FORCES):
        assert_close(got[key].detach(), expected[key].detach(), torch.float64)
