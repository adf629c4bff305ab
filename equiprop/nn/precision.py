"""Build modules in a chosen floating-point precision.

e3nn computes its constants (Clebsch-Gordan coefficients, change-of-basis
matrices) in the default dtype when a module is built. A module built in
float32 and cast to float64 afterwards keeps float32-rounded constants and is
equivariant only to about 1e-7; build it in float64 instead (models take a
``dtype`` argument for this).
"""

from contextlib import contextmanager

import torch


def as_dtype(dtype) -> torch.dtype:
    """``torch.float32``/``torch.float64`` from a dtype or its name (``"float64"``)."""
    resolved = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if resolved not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return resolved


@contextmanager
def default_dtype(dtype):
    """Temporarily set torch's default dtype (restored on exit, also on error)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(as_dtype(dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
