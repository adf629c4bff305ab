"""Micro-benchmark behind docs/performance.md step 5: the per-edge coupling matmul in both feature layouts.

``.venv/bin/python bench/coupling_micro.py [--threads 2]``: milliseconds of the per-edge
product of features with a ``[9, 9]`` coupling matrix for 2,500 edges x 32 channels (a batch
of 16 water clusters at lmax 2), channels last ``[E, 9, 9] @ [E, 9, 32]`` (equiprop since
step 5) against components last ``[E, 32, 9] @ [E, 9, 9]`` (before), forward alone and
forward + backward.
"""

import argparse
import time

import torch


def milliseconds(fn, repeats: int = 50) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--edges", type=int, default=2500)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    features = torch.randn(args.edges, 9, 32, requires_grad=True)  # [E, M, F]
    coupling = torch.randn(args.edges, 9, 9, requires_grad=True)  # [E, M3, M1]
    last = features.detach().transpose(1, 2).contiguous().requires_grad_(True)  # [E, F, M]
    coupling_t = coupling.detach().transpose(1, 2).contiguous().requires_grad_(True)  # [E, M1, M3]
    upstream = torch.randn(args.edges, 9, 32)  # a contiguous gradient, as the next layer would send
    layouts = {
        "channels last   [E, 9, 9] @ [E, 9, 32]": (lambda: torch.bmm(coupling, features), upstream),
        "components last [E, 32, 9] @ [E, 9, 9]": (lambda: torch.bmm(last, coupling_t), upstream.transpose(1, 2).contiguous()),
    }
    for name, (product, gradient) in layouts.items():
        forward = milliseconds(lambda: product().detach())
        both = milliseconds(lambda: product().backward(gradient))
        print(f"{name}: forward {forward:.2f} ms, forward + backward {both:.2f} ms")


if __name__ == "__main__":
    main()
