"""Data of several kinds (random placements, MD frames, minima): stratified splits and errors per kind."""

import json

import ase.io
import numpy as np

from conftest import SMALL
from equiprop import datasets
from equiprop.cli.main import main
from equiprop.data.split import split_indices, stratified_split, structure_kind


def test_stratified_split_holds_every_kind():
    kinds = ["random"] * 40 + ["md"] * 20 + ["minimum"] * 10
    split = stratified_split(kinds, val=0.1, test=0.2, seed=3)
    together = np.concatenate([split.train, split.val, split.test])
    assert sorted(together.tolist()) == list(range(len(kinds)))  # disjoint, complete
    for name, n_test in (("random", 8), ("md", 4), ("minimum", 2)):
        assert sum(kinds[k] == name for k in split.test) == n_test
    tiny = stratified_split(["random"] * 30 + ["md"] * 2, val=0.1, test=0.1, seed=0)
    assert {30, 31} <= set(tiny.train.tolist())  # two md frames cannot fill three parts: both train
    single = stratified_split(["random"] * 30, val=0.1, test=0.1, seed=3)
    plain = split_indices(30, val=0.1, test=0.1, seed=3)
    for name in ("train", "val", "test"):
        assert np.array_equal(getattr(single, name), getattr(plain, name))  # old runs keep their split


def test_a_charged_structure_is_its_own_kind():
    neutral, cation, anion = datasets.water_pbe0()[0], *datasets.water_pbe0_ions()[149:151]
    assert [structure_kind(a) for a in (neutral, cation, anion)] == ["random", "random +1", "random -1"]
    cation.info["sample"] = "md"
    assert structure_kind(cation) == "md +1"


def test_training_reports_errors_per_kind(tmp_path):
    ions = datasets.water_pbe0_ions()
    frames = datasets.water_pbe0()[:30]
    for atoms in frames[20:]:
        atoms.info["sample"] = "md"
    ase.io.write(tmp_path / "mixed.xyz", frames + ions[:5] + ions[150:155])
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "mixed.xyz"), "--epochs", "1", "--test-fraction", "0.2",
                 "--out", str(out), *SMALL]) == 0
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert {kind: m["n_structures"] for kind, m in metrics["by_kind"].items()} == {
        "random": 4, "md": 2, "random +1": 1, "random -1": 1}  # each charge in the test split, reported apart
    assert "held-out md structures" in (out / "summary.md").read_text()
