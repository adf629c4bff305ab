"""Fixtures built in code (ase.build), and helpers that make physics tests one-liners."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from e3nn import o3

import ase.io

import equiprop
from equiprop import datasets
from equiprop.cli.main import main

ELEMENTS = ["H", "O"]


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def water_cluster(n_molecules: int, seed: int = 0, spacing: float = 2.9) -> Atoms:
    """``n_molecules`` randomly oriented, slightly distorted waters on a jittered grid."""
    rng = np.random.default_rng(seed)
    cluster = Atoms()
    side = int(np.ceil(n_molecules ** (1 / 3)))
    for k in range(n_molecules):
        water = molecule("H2O")
        water.rotate(rng.uniform(0, 360), rng.normal(size=3) + 1e-3, center="COM")
        grid = np.array([k % side, (k // side) % side, k // side**2], dtype=float)
        water.positions += grid * spacing + rng.normal(scale=0.15, size=3) + rng.normal(scale=0.03, size=(3, 3))
        cluster += water
    return cluster


def periodic_water(seed: int = 0) -> Atoms:
    """Eight waters in a periodic cube of 6.2 Angstrom (some bonds cross the boundary)."""
    atoms = water_cluster(8, seed=seed, spacing=3.1)
    atoms.set_cell(np.diag([6.2, 6.2, 6.2]) + np.random.default_rng(seed).normal(scale=0.1, size=(3, 3)))
    atoms.pbc = True
    atoms.positions += 1.0
    return atoms


def rotated(atoms: Atoms, rotation: np.ndarray, shift=(0.0, 0.0, 0.0)) -> Atoms:
    """Copy of ``atoms`` with positions and cell rotated (``r -> r R^T``) and then shifted."""
    new = atoms.copy()
    new.positions = atoms.positions @ rotation.T + np.asarray(shift)
    new.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    return new


def random_rotation(seed: int) -> np.ndarray:
    """A random proper rotation matrix (det +1), float64."""
    torch.manual_seed(seed)
    return o3.rand_matrix(dtype=torch.float64).numpy()


def assert_close(actual, expected, dtype) -> None:
    """1e-10 (absolute, for values of order one) in float64; 1e-5 relative in float32."""
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    err = float(np.abs(actual - expected).max(initial=0.0))
    assert err <= tol * scale, f"max deviation {err:.3e} > {tol:.0e} x {scale:.3g}"


def make_model(kind: str, dtype=torch.float64, seed: int = 0, **overrides):
    """A small randomly initialised model of ``kind`` ('schnet' or 'so3net') with all targets."""
    torch.manual_seed(seed)
    args = dict(
        elements=ELEMENTS, cutoff=3.0, features=8, interactions=2, targets=["charges", "dipole", "energy"], dtype=dtype
    )
    args.update(overrides)
    model = equiprop.SchNet(**args) if kind == "schnet" else equiprop.SO3Net(**{"lmax": 2, **args})
    with torch.no_grad():  # non-zero energy references and scale, so they are tested too
        model.element_energies.copy_(torch.tensor([-0.3, -1.2], dtype=dtype))
        model.charge_energies.copy_(torch.tensor([0.7, 1.9], dtype=dtype))
        model.energy_scale.fill_(0.5)
        spread = model.charge_spread.head if model.charge_spread is not None else None
        for head in (model.charge_head, model.energy_head, spread):  # heads start at zero: make them random
            if head is not None:
                torch.nn.init.normal_(head.net[-1].weight, std=0.5)
                torch.nn.init.normal_(head.net[-1].bias, std=0.1)
    return model


#: Flags for a tiny, fast model in command-line tests.
SMALL = ["--features", "8", "--interactions", "1", "--n-rbf", "8", "--batch-size", "8", "--cutoff", "3.0"]


@pytest.fixture(scope="session")
def slice_file(tmp_path_factory):
    """The first 24 shipped PBE0 water clusters as an extxyz file."""
    path = tmp_path_factory.mktemp("data") / "water24.xyz"
    ase.io.write(path, datasets.water_pbe0()[:24])
    return path


@pytest.fixture(scope="session")
def run_dir(slice_file, tmp_path_factory):
    """A SchNet run on all four targets, trained for two epochs through the command line."""
    out = tmp_path_factory.mktemp("runs") / "schnet"
    assert main(["train", "--model", "schnet", "--data", str(slice_file), "--epochs", "2", "--out", str(out), *SMALL]) == 0
    return out


def assert_forces_are_minus_the_gradient(model, atoms, components=(0, 4, 8), delta: float = 1e-5, atol: float = 1e-7):
    """The calculator's forces on ``atoms`` against central differences of its energy, at the flattened
    position ``components`` (float64 models)."""
    atoms = atoms.copy()
    atoms.calc = equiprop.EquipropCalculator(model)
    forces = atoms.get_forces()
    for k in components:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions.reshape(-1)[k] += delta
        minus.positions.reshape(-1)[k] -= delta
        plus.calc = minus.calc = equiprop.EquipropCalculator(model)
        numeric = -(plus.get_potential_energy() - minus.get_potential_energy()) / (2 * delta)
        assert forces.reshape(-1)[k] == pytest.approx(numeric, abs=atol)
