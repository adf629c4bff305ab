"""An explicit, ordered map from chemical elements to consecutive type indices."""

from dataclasses import dataclass

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from equiprop.errors import InputError, where


@dataclass(frozen=True)
class TypeMap:
    """Ordered elements; element ``elements[k]`` gets type index ``k``.

    The order is the user's and is stored with the model, so type indices are
    the same for every structure and every run.
    """

    elements: tuple[str, ...]

    def __post_init__(self):
        elements = tuple(str(e) for e in self.elements)
        object.__setattr__(self, "elements", elements)
        if not elements:
            raise ValueError("the type map needs at least one element, e.g. elements=['H', 'O']")
        unknown = [e for e in elements if e not in atomic_numbers or e == "X"]
        if unknown:
            raise ValueError(f"not chemical symbols: {unknown} (elements={list(elements)})")
        if len(set(elements)) != len(elements):
            raise ValueError(f"elements appear twice in the type map: {list(elements)}")

    def __len__(self) -> int:
        return len(self.elements)

    @property
    def atomic_numbers(self) -> np.ndarray:
        """Atomic numbers in type order, ``[n_types]``."""
        return np.array([atomic_numbers[e] for e in self.elements], dtype=np.int64)

    def types(self, numbers: np.ndarray, index: int = 0, source: str | None = None) -> np.ndarray:
        """Type indices ``[n_atoms]`` for atomic numbers ``[n_atoms]``.

        Raises InputError naming the structure, the atom and the element when an
        element is not in the map.
        """
        lookup = np.full(max(int(numbers.max(initial=0)), int(self.atomic_numbers.max())) + 1, -1)
        lookup[self.atomic_numbers] = np.arange(len(self))
        types = lookup[numbers]
        bad = np.flatnonzero(types < 0)
        if bad.size:
            symbol = chemical_symbols[numbers[bad[0]]]
            raise InputError(
                f"{where(index, source)}: element {symbol!r} (atom {bad[0]}) is not in the "
                f"model's type map {list(self.elements)}"
            )
        return types
