"""The malloc setting that keeps freed tensor memory in the process (equiprop/models/allocator.py)."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
from equiprop.models.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory() and keep_freed_memory()  # idempotent
if sys.argv[1] == "predict":  # the Python API's inference (and so the ASE calculator) applies it too
    import equiprop
    from ase.build import molecule
    equiprop.SchNet(elements=["H", "O"], cutoff=3.0, targets=["charges"]).predict([molecule("H2O")])
torch.set_num_threads(1)
x, rows = torch.randn(9, 8448), torch.randint(0, 9, (83,))
def step():  # the body-order product's pattern: a 2.8 MB gather and product, freed again
    return (x.index_select(0, rows) * x.index_select(0, rows.flip(0))).sum()
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    # glibc's static default threshold (its dynamic one depends on the process's allocation history, so a
    # plain process sometimes faults and sometimes not): the control faults every time
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, env=env)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc setting")
def test_freed_tensor_memory_is_reused_without_page_faults():
    default, kept = page_faults("glibc"), page_faults("keep")
    assert default > 50 * 100  # glibc maps and unmaps each 2.8 MB block: ~700 faults per block
    assert kept < default / 20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc setting")
def test_model_predict_applies_the_setting():
    default, after_predict = page_faults("glibc"), page_faults("predict")
    assert after_predict < default / 20
