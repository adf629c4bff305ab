"""Deterministic train/validation/test splits by structure."""

from dataclasses import dataclass

import numpy as np


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
