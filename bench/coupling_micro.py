"""Micro-benchmark behind docs/performance.md steps 1-2: ways to couple per-edge features with CG tables.

``.venv/bin/python bench/coupling_micro.py``: forward and "train-like" (double backward) milliseconds for
2,500 edges x 32 channels, as in a batch of 16 water clusters.
"""
import torch, time, sys
torch.set_num_threads(int(sys.argv[1]))
x = torch.rand(2296, 1)
for i in range(3):
    t=time.perf_counter()
    for _ in range(100): torch.cos(x); torch.sqrt(x)
    print("cos+sqrt x100", time.perf_counter()-t)
a = torch.rand(2296, 32); b = torch.rand(32, 32)
t=time.perf_counter()
for _ in range(100): a@b
print("mm x100", time.perf_counter()-t)
