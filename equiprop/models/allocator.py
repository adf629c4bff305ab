"""Keep freed memory inside the process, so each step's tensors do not page-fault anew.

PyTorch allocates CPU tensors with the C library's ``malloc``. With glibc's
defaults, blocks of a few megabytes (the ``[n_edges, 9, 32]`` edge tensors of a
batch) are mapped from and returned to the operating system on every
allocation, and the kernel zero-fills each 4 KiB page again on first touch:
3,800-6,200 page faults per SO3Net training step here, and an
``index_select`` + ``mul`` on a 2.8 MB tensor took 3.6 ms instead of 0.16 ms
(docs/performance.md, step 9). Raising glibc's mmap and trim thresholds keeps
freed blocks in the heap for reuse, as jemalloc or tcmalloc (which Intel's
PyTorch guides preload for the same reason) do by default.

The setting is process-wide and keeps the heap at its peak size until exit;
``equiprop train``/``evaluate``/``predict``, ``Trainer.fit`` and
``model.predict`` (so the ASE calculator too) call :func:`keep_freed_memory`.
Elsewhere it does nothing (non-glibc systems).
"""

import ctypes
import ctypes.util
import sys

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (glibc accepts up to half its heap size, 32 MiB, on older
#: versions any value); larger ones are mapped and unmapped as before.
_MMAP_THRESHOLDS = (1 << 30, 1 << 25)
#: -1: never give the heap's free top back (mallopt(3)); a finite threshold (at most 2 GiB through mallopt's
#: int) let inference on 12,288 atoms, whose heap tops out near 4 GiB, page-fault ~700,000 times per call.
_TRIM_THRESHOLD = -1
#: The setting for another process (the benchmark's peers), through glibc's environment variables (read when
#: it starts); its trim threshold stays at 2 GiB, which equals "never" for heaps under 2 GiB, as in training.
ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": str(_MMAP_THRESHOLDS[0]), "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1)}

_applied = False


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed blocks for reuse; True if the setting is in effect."""
    global _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        return False
    if not any(libc.mallopt(_M_MMAP_THRESHOLD, size) for size in _MMAP_THRESHOLDS):
        return False
    _applied = bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _applied


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # only glibc has this (musl's mallopt is a no-op)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return libc
