"""The README's Python blocks run as written (in a folder where `make demo` has left runs/demo/best.pt)."""

import re
import shutil
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_to_run():
    assert python_blocks(README.read_text())


def test_readme_python_runs_as_written(run_dir, tmp_path, monkeypatch):
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    shutil.copy(run_dir / "best.pt", tmp_path / "runs" / "demo" / "best.pt")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in python_blocks(README.read_text()):
        exec(compile(block, str(README), "exec"), namespace)
