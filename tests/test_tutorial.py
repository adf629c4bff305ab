"""The tutorial notebook runs (its code cells, in order, in one namespace)."""

import json
import tempfile
from pathlib import Path

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"


def test_tutorial_notebook_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("EQUIPROP_TUTORIAL_EPOCHS", "1")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    namespace: dict = {"__name__": "__tutorial__"}
    for number, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            exec(compile(source, f"{NOTEBOOK.name}[cell {number}]", "exec"), namespace)
    assert Path(namespace["WORKDIR"]).parent == tmp_path
    assert Path(namespace["WORKDIR"], "parity_charges.png").is_file()
    assert namespace["deviations"]["dipole"] < 1e-4
