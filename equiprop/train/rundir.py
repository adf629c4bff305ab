"""The run directory: refuse to clobber, resume or replace on request."""

import shutil
from pathlib import Path

from equiprop.errors import InputError

#: Files that mark a directory as an equiprop run (only such a directory is ever replaced).
RUN_MARKERS = ("config.yaml", "metrics.csv", "last.pt", "best.pt")


def is_run_dir(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_MARKERS)


def prepare_run_dir(path, resume: bool, overwrite: bool, log) -> Path:
    """Create ``path`` for a new run, or check it for ``resume``; replace a run only with ``overwrite``."""
    path = Path(path)
    if resume:
        if not (path / "last.pt").is_file():
            raise InputError(f"{path}: nothing to resume (no last.pt)")
        return path
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise InputError(f"{path}: the run directory exists; pass --resume to continue it or --overwrite to replace it")
        if not is_run_dir(path):
            raise InputError(f"{path}: exists and is not an equiprop run directory; refusing to delete it")
        log(f"{path}: replacing the previous run (--overwrite)")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
