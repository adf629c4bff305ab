"""Eager against ``torch.compile``-d SO3Net training steps: the experiment for the next GPU run.

``python bench/compile_speed.py --device cuda [--batch 16] [--passes 3] [--lmax 2] [--sh-lmax L]``

On the H200 a batch-16 training step was 1,901 small CUDA kernels with the GPU
busy 8% of the time (docs/benchmarks.md, "On GPU"): fusing kernels is where a
GPU step can gain. A compiled graph cannot be differentiated twice, so the
forces come from ``torch.func.grad`` inside the compiled function and training
needs only a first-order backward of it (equiprop/models/compiled.py, which
``equiprop train --compile`` uses). Prints the compile time, the largest
difference of energies, forces and dipoles from eager, the parameter-gradient
agreement, and structures/s of both versions, passes alternated. On the 2-core
CPU of the project's machine, lmax 2: compiling took ~110 s and gained 1.09x
(231 -> 252) before docs/performance.md steps 21-23, 1.98x after them (168 -> 332,
one run, cache warm; the machine was slow then); ``--lmax 1 --sh-lmax 2`` before
them: 70 s, 457 -> 634 structures/s (1.39x; step 20). ``--interactions 1 --lmax 1`` makes a quick correctness run.
"""

import argparse
import statistics
import time

import torch

import equiprop
from equiprop import datasets
from equiprop.data import collate, frames_to_graphs
from equiprop.keys import Property
from equiprop.models.allocator import keep_freed_memory
from equiprop.models.compiled import compiled_outputs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--interactions", type=int, default=3)
    p.add_argument("--lmax", type=int, default=2)
    p.add_argument("--sh-lmax", type=int, default=None, help="spherical harmonics' degree (default: --lmax)")
    args = p.parse_args()
    keep_freed_memory()  # as the trainer (on a CPU: no page faults on each step's fresh tensors)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    model = equiprop.SO3Net(elements=["H", "O"], cutoff=4.0, lmax=args.lmax, sh_lmax=args.sh_lmax, features=32, interactions=args.interactions,
                            targets=["charges", "dipole", "energy"]).to(args.device)
    graphs = frames_to_graphs(datasets.water_pbe0()[:160], model.type_map, model.cutoff)
    batches = [collate(graphs[k : k + args.batch]).to(args.device, torch.float32) for k in range(0, 160, args.batch)]
    eager = lambda batch: model(batch, compute_forces=True)  # noqa: E731
    compiled = compiled_outputs(model, with_forces=True)

    start = time.perf_counter()
    reference, result = eager(batches[0]), compiled(batches[0])
    print(f"compile (first batch): {time.perf_counter() - start:.1f} s")
    for prop in (Property.ENERGY, Property.FORCES, Property.DIPOLE, Property.CHARGES):
        print(f"  {prop.value:8s} max |compiled - eager| = {float((result[prop] - reference[prop]).detach().abs().max()):.2e}")
    grads = []
    for fn in (eager, compiled):
        out = fn(batches[0])
        loss = sum(out[prop].pow(2).mean() for prop in out)
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(model.parameters()))]))
    print(f"  parameter gradients: |compiled - eager| / |eager| = {float((grads[1] - grads[0]).norm() / grads[0].norm()):.2e}")

    optimizer = torch.optim.AdamW(model.parameters(), 1e-4, fused=True)

    def one_pass(fn) -> float:
        start = time.perf_counter()
        for batch in batches:
            out = fn(batch)
            loss = sum(out[prop].pow(2).mean() for prop in out)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return len(batches) * args.batch / (time.perf_counter() - start)

    start = time.perf_counter()
    one_pass(compiled)  # batches of other sizes may recompile once
    print(f"first compiled pass (recompilations included): {time.perf_counter() - start:.1f} s")
    one_pass(eager)
    rates = {"eager": [], "compiled": []}
    for k in range(args.passes):
        for name in (("eager", "compiled") if k % 2 == 0 else ("compiled", "eager")):
            rates[name].append(one_pass(eager if name == "eager" else compiled))
    for name, values in rates.items():
        print(f"{name:9s} {statistics.median(values):7.0f} structures/s (median of {args.passes}, batch {args.batch}, {args.device})")


if __name__ == "__main__":
    main()
