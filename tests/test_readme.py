"""The Python blocks of README.md, docs/*.md and docs/examples/*/*.md run as written, in a fresh folder holding runs/demo/best.pt.

A block whose first line is ``# not run: <reason>`` is skipped (the reason says why).
"""

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "examples").glob("*/*.md")),
        ROOT / "equiprop" / "datasets" / "README.md"]


def python_blocks(text: str) -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)
    return [b for b in blocks if not b.lstrip().startswith("# not run:")]


def test_the_readme_has_python_to_run():
    assert python_blocks((ROOT / "README.md").read_text())


@pytest.mark.parametrize("doc", [d for d in DOCS if python_blocks(d.read_text())], ids=lambda d: str(d.relative_to(ROOT)))
def test_python_blocks_run_as_written(doc, run_dir, tmp_path, monkeypatch):
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    shutil.copy(run_dir / "best.pt", tmp_path / "runs" / "demo" / "best.pt")  # what `make demo` leaves
    (tmp_path / "runs" / "box").mkdir()
    shutil.copy(run_dir / "best.pt", tmp_path / "runs" / "box" / "best.pt")  # docs/examples/npt: --electrostatics none
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in python_blocks(doc.read_text()):
        exec(compile(block, str(doc), "exec"), namespace)
