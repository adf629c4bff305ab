"""QM9 conversion from qm9pack's CSV (the first three rows of the real file), units, cache, errors."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from equiprop.cli.main import main
from equiprop.datasets import qm9_conversion as qm9_module
from equiprop.errors import InputError, MissingExtraError

HEAD = Path(__file__).parent / "data" / "qm9pack_head.csv"  # rows 1-3 of qm9pack 1.0.3's qm9_part1.csv


@pytest.fixture
def fake_qm9pack(monkeypatch, tmp_path):
    """qm9pack's files replaced by the three-row head; the cache in a temporary directory."""
    monkeypatch.setattr(qm9_module, "qm9pack_files", lambda: [HEAD])
    monkeypatch.setenv("EQUIPROP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_known_molecules_in_equiprop_units(fake_qm9pack):
    methane, ammonia, water = qm9_module.qm9(progress=False)
    assert methane.get_chemical_formula() == "CH4" and ammonia.get_chemical_formula() == "H3N"
    assert water.get_chemical_symbols() == ["O", "H", "H"]
    assert methane.info["U0"] == pytest.approx(-1101.4878, abs=1e-3)  # -40.47893 Hartree
    assert methane.info["homo"] == pytest.approx(-10.550, abs=1e-3)  # -0.3877 Hartree
    assert methane.info["dipole_magnitude"] == 0.0
    assert ammonia.info["dipole_magnitude"] == pytest.approx(0.33844, abs=1e-4)  # 1.6256 Debye in e*Angstrom
    assert water.arrays["mulliken_charges"] == pytest.approx([-0.589706, 0.294853, 0.294853])
    assert abs(water.arrays["mulliken_charges"].sum()) < 1e-5
    oh = np.linalg.norm(water.positions[1] - water.positions[0])
    assert oh == pytest.approx(0.96, abs=0.01)  # Angstrom: a B3LYP O-H bond
    assert (methane.info["qm9_index"], water.info["smiles"]) == (1, "O")


def test_cache_is_written_once_and_reused(fake_qm9pack, monkeypatch):
    first = qm9_module.qm9(progress=False)
    cache = fake_qm9pack / f"qm9-v{qm9_module.CACHE_VERSION}.npz"
    assert cache.is_file()
    monkeypatch.setattr(qm9_module, "convert", lambda *a, **k: pytest.fail("converted again"))
    again = qm9_module.qm9(progress=False, indices=[2])
    assert again[0].info == first[2].info and np.array_equal(again[0].positions, first[2].positions)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(qm9_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingExtraError, match=r"pip install 'equiprop\[qm9\]'"):
        qm9_module.qm9pack_files()


def test_bad_row_names_file_and_line(tmp_path):
    lines = HEAD.read_text().splitlines()
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([lines[0], lines[1].replace(",5,", ",6,", 1)]) + "\n")
    with pytest.raises(InputError, match=r"bad.csv, line 2: molecule 1 has N_atoms=6"):
        qm9_module.convert([bad], progress=False)


def test_train_on_qm9_dipole_magnitude_with_split_file(fake_qm9pack, tmp_path):
    """``--data qm9`` picks QM9's label keys; a split file chooses the structures; |mu| is trained."""
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [0], "val": [1], "test": [2]}))
    out = tmp_path / "run"
    args = ["train", "--data", "qm9", "--split-file", str(split), "--targets", "dipole_magnitude,energy,charges",
            "--model", "schnet", "--epochs", "2", "--features", "8", "--interactions", "1", "--n-rbf", "8", "--out", str(out)]
    assert main(args) == 0
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert set(metrics) == {"charges", "dipole_magnitude", "energy"} and "mae_debye" in metrics["dipole_magnitude"]


def test_split_file_errors(fake_qm9pack, tmp_path, capsys):
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [0, 1], "val": [1]}))
    assert main(["train", "--data", "qm9", "--split-file", str(split), "--out", str(tmp_path / "r")]) == 2
    assert "structure 1 is in both 'train' and 'val'" in capsys.readouterr().err


def test_dipole_magnitude_is_the_norm_and_rotation_invariant(dtype):
    import equiprop
    from equiprop.data import collate, frames_to_graphs
    from equiprop.datasets import water_pbe0

    frames = water_pbe0()[:3]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = equiprop.SO3Net(["H", "O"], cutoff=4.0, features=8, interactions=1, lmax=1, dtype=dtype,
                                targets=["dipole", "dipole_magnitude"])
        for p in model.parameters():
            torch.nn.init.normal_(p, std=0.3)
    batch = collate(frames_to_graphs(frames, model.type_map, model.cutoff)).to(dtype=dtype)
    out = model(batch)
    assert torch.allclose(out["dipole_magnitude"], out["dipole"].norm(dim=1))
    rotated = [a.copy() for a in frames]
    for a in rotated:
        a.rotate(73, (1, 2, 3), center=(0, 0, 0))
    out_rot = model(collate(frames_to_graphs(rotated, model.type_map, model.cutoff)).to(dtype=dtype))
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    assert torch.allclose(out_rot["dipole_magnitude"], out["dipole_magnitude"], rtol=tol, atol=tol)


def test_qm9_number_formats():
    """QM9 writes ``0.`` and ``1.`` (acetylene, row 4) and Mathematica exponents ``*^``."""
    values = qm9_module.numbers_in("[[0.5995394918,0.,1.],[-1.2*^-6,2,3]]")
    assert values.tolist() == [0.5995394918, 0.0, 1.0, -1.2e-6, 2.0, 3.0]


def test_dipole_magnitude_learns_from_the_first_step():
    """Zero-initialised charges would give |mu| = 0, where the norm has no gradient: SchNet would never learn."""
    import equiprop
    from equiprop.data import collate, frames_to_graphs
    from equiprop.datasets import water_pbe0

    frames = water_pbe0()[:4]
    torch.manual_seed(0)
    model = equiprop.SchNet(["H", "O"], cutoff=4.0, features=8, interactions=1, targets=["dipole_magnitude"])
    batch = collate(frames_to_graphs(frames, model.type_map, model.cutoff)).to(dtype=torch.float32)
    reference = torch.tensor([np.linalg.norm(a.info["dft_dipole"]) for a in frames], dtype=torch.float32)
    loss = (model(batch)["dipole_magnitude"] - reference).pow(2).mean()
    loss.backward()
    assert model(batch)["dipole_magnitude"].min() > 0
    assert model.charge_head.net[-1].weight.grad.abs().max() > 0
