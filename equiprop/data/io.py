"""Reading and writing structure files (extxyz and whatever ASE reads), with clear errors."""

import os
import tempfile
from pathlib import Path
from typing import Sequence

import ase.io
from ase import Atoms

from equiprop.errors import InputError


def read_structures(path, index=":") -> list[Atoms]:
    """All frames of ``path`` (``.xyz``, ``.xyz.gz`` and every format ASE reads).

    Raises InputError if the file is missing, unreadable or holds no structure.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        frames = ase.io.read(path, index=index)
    except Exception as error:  # ASE raises many types for malformed files
        raise InputError(f"{path}: cannot read structures ({type(error).__name__}: {error})") from None
    frames = [frames] if isinstance(frames, Atoms) else list(frames)
    if not frames:
        raise InputError(f"{path}: the file holds no structures")
    return frames


def write_structures(path, frames: Sequence[Atoms], overwrite: bool = False) -> None:
    """Write ``frames`` as extxyz to ``path`` through a temporary file and a rename.

    Refuses (InputError) to replace an existing file unless ``overwrite``; a
    failure never leaves a half-written ``path``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(f"{path}: the file exists; pass --overwrite to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        ase.io.write(tmp, list(frames), format="extxyz")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
