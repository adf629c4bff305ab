"""Deterministic train/validation/test splits by structure."""

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from equiprop.keys import TOTAL_CHARGE_KEY


@dataclass(frozen=True)
class Split:
    """Structure indices of each part (disjoint, together all structures)."""

    train: np.ndarray  # [n_train] int
    val: np.ndarray  # [n_val] int
    test: np.ndarray  # [n_test] int


def split_indices(n_structures: int, val: float = 0.1, test: float = 0.1, seed: int = 0) -> Split:
    """Shuffle ``range(n_structures)`` with ``seed`` and cut off ``val`` and ``test`` fractions.

    The same arguments always give the same split (numpy's PCG64 generator).
    Sizes round to the nearest integer; every requested part gets at least one
    structure, and training keeps at least one.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"need 0 <= val, test and val + test < 1, got val={val}, test={test}")
    n_val = max(int(round(val * n_structures)), 1 if val > 0 else 0)
    n_test = max(int(round(test * n_structures)), 1 if test > 0 else 0)
    if n_structures - n_val - n_test < 1:
        raise ValueError(f"{n_structures} structures are too few for val={val}, test={test}")
    order = np.random.default_rng(seed).permutation(n_structures)
    return Split(
        train=np.sort(order[n_val + n_test :]),
        val=np.sort(order[:n_val]),
        test=np.sort(order[n_val : n_val + n_test]),
    )


#: ``info`` key naming how a structure was made (``md``, ``minimum``; absent: ``random``, the shipped placements).
KIND_KEY = "sample"


def structure_kind(atoms) -> str:
    """``atoms.info["sample"]`` (``"random"`` when absent: the shipped random placements), and the total charge if not 0.

    ``"md"``, ``"minimum"``, ``"random"``; a charged structure is ``"random +1"``,
    ``"md -1"``: splits hold every charge, and errors are reported per charge.
    """
    kind = str(atoms.info.get(KIND_KEY, "random"))
    charge = float(atoms.info.get(TOTAL_CHARGE_KEY, 0))  # checked where the graphs are built
    return f"{kind} {charge:+g}" if charge else kind  # a fractional charge stays apart from its neighbours


def stratified_split(kinds: Sequence[str], val: float = 0.1, test: float = 0.1, seed: int = 0) -> Split:
    """:func:`split_indices` within each kind, so validation and test hold every kind in proportion.

    With one kind this is exactly ``split_indices(len(kinds), val, test, seed)``.
    A kind too small to give every part a structure (fewer than three, say)
    goes to training whole.
    """
    groups = {kind: np.flatnonzero(np.asarray(kinds) == kind) for kind in sorted(set(kinds))}
    if len(groups) <= 1:
        return split_indices(len(kinds), val, test, seed)
    parts = [_split_or_train(len(members), val, test, seed + k) for k, members in enumerate(groups.values())]
    merged = {name: np.sort(np.concatenate([members[getattr(part, name)] for members, part in zip(groups.values(), parts)]))
              for name in ("train", "val", "test")}
    return Split(**merged)


def _split_or_train(n: int, val: float, test: float, seed: int) -> Split:
    try:
        return split_indices(n, val, test, seed)
    except ValueError:  # too few to split
        empty = np.zeros(0, dtype=np.int64)
        return Split(train=np.arange(n), val=empty, test=empty)


def read_split(path, n_structures: int) -> Split:
    """A split from a JSON file ``{"train": [...], "val": [...], "test": [...]}`` of structure indices.

    The parts must be disjoint and within ``range(n_structures)``; they need
    not cover every structure (learning curves train on subsets). ``test``
    may be empty or absent when the test set comes from its own file.
    """
    import json

    from equiprop.errors import InputError

    try:
        parts = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such split file") from None
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a JSON split file ({error})") from None
    if not isinstance(parts, dict) or not {"train", "val"} <= set(parts):
        raise InputError(f"{path}: expected an object with 'train', 'val' (and 'test') index lists")
    arrays = {}
    for name in ("train", "val", "test"):
        values = parts.get(name, [])
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise InputError(f"{path}: {name!r} must be a list of integer structure indices")
        bad = [v for v in values if not 0 <= v < n_structures]
        if bad:
            raise InputError(f"{path}: {name!r} index {bad[0]} is outside the data (0..{n_structures - 1})")
        arrays[name] = np.array(values, dtype=np.int64)
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        shared = np.intersect1d(arrays[a], arrays[b])
        if len(shared):
            raise InputError(f"{path}: structure {shared[0]} is in both {a!r} and {b!r}")
    for name in ("train", "val"):
        if len(arrays[name]) == 0:
            raise InputError(f"{path}: {name!r} is empty")
    return Split(**arrays)
