"""Errors raised for bad user input.

Every message names where the problem is: the file (when known), the structure
index and the key, atom or element at fault.
"""


class InputError(ValueError):
    """Bad input data: the message says which file, structure and key or element."""


def where(index: int, source: str | None = None) -> str:
    """Human-readable location of a structure, e.g. ``"structure 3 of water.xyz"``."""
    return f"structure {index} of {source}" if source else f"structure {index}"


class SetupError(RuntimeError):
    """This machine cannot do what was asked (e.g. ``--compile`` without a C++ compiler); the message says what to change."""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message gives the pip command."""


def require(module: str, extra: str):
    """Import ``module`` or raise MissingExtraError naming ``pip install 'equiprop[extra]'``."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{module} is not installed; install it with: pip install 'equiprop[{extra}]'") from None
