"""Probe: static-shape torch.compile inside a CUDA graph, for one padded batch (docs/performance.md, step 28).

``python bench/compile_probe.py [default] [max-autotune-no-cudagraphs ...]`` (on a GPU; on a CPU without the
graphs and kernel counts). One padded batch of 16 shipped water clusters, SO3Net (lmax 2, 32 features, 3
interactions), in training mode: forward, forces and parameter gradients of a sum-of-squares loss, eagerly and
through ``torch.compile(dynamic=False)`` (the forces by ``torch.func.grad``, as in ``equiprop/models/compiled.py``),
each plain and replayed from a CUDA graph: milliseconds per step, kernels per step, how far the compiled
gradients are from the eager ones. A probe for a possible GPU path (the padded shapes are fixed, so no dynamic
shapes, which PyTorch 2.11 cannot trace on a GPU), not a benchmark of the trainer.
"""

import sys
import time
import traceback

import torch

import equiprop
from equiprop import datasets
from equiprop.data.batch import collate
from equiprop.data.graph import frames_to_graphs
from equiprop.keys import Property
from equiprop.data.padding import PaddedShape, pad_batch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def milliseconds(step, n: int = 50) -> float:
    """Mean time per call after three untimed calls."""
    for _ in range(3):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(n):
        step()
    sync()
    return 1e3 * (time.perf_counter() - start) / n


def graphed(step):
    """``step`` recorded in a CUDA graph (warmed up on a side stream); the replay. Unchanged on a CPU."""
    if DEVICE != "cuda":
        return step
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def kernels(step) -> int:
    """CUDA kernels launched by one call (-1 on a CPU)."""
    if DEVICE != "cuda":
        return -1
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    return sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA")


def compare(model, eager, compiled) -> None:
    """The worst parameter (largest difference over its largest eager gradient) and all gradients' norm ratio."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    pairs = [(n, x, y) for n, x, y in zip(names, eager, compiled) if x is not None]
    name, x, y = max(pairs, key=lambda t: float((t[1] - t[2]).abs().max() / (t[1].abs().max() + 1e-12)))
    print(f"  worst parameter {name}: max |difference| {float((x - y).abs().max()):.2e}, "
          f"max |eager gradient| {float(x.abs().max()):.2e}", flush=True)
    flat_x, flat_y = (torch.cat([t.reshape(-1) for t in ts]) for ts in ([x for _, x, _ in pairs], [y for _, _, y in pairs]))
    print(f"  all gradients: |difference| / |eager| = {float((flat_x - flat_y).norm() / flat_x.norm()):.2e}", flush=True)


def main() -> None:
    torch.manual_seed(0)
    model = equiprop.SO3Net(elements=["H", "O"], cutoff=4.0, lmax=2, features=32, interactions=3,
                            targets=["charges", "dipole", "energy", "forces"]).to(DEVICE).train()
    params = [p for p in model.parameters() if p.requires_grad]
    frames = datasets.water_pbe0()[:16]
    batch = collate(frames_to_graphs(frames, model.type_map, model.cutoff, None)).to(dtype=torch.float32)
    shape = PaddedShape.of(batch, 16)
    padded = pad_batch(batch, {}, shape, model.cutoff).map(lambda t: t.to(DEVICE)).batch
    print("shape", shape, "paired edges", padded.paired_edges, flush=True)

    def loss_of(out):
        return sum((v.float() ** 2).sum() for v in out.values())

    def eager_step():
        return torch.autograd.grad(loss_of(model(padded, compute_forces=True)), params, allow_unused=True)

    def outputs(batch):
        def energy(positions):
            out = model.outputs(batch, positions)
            return out[Property.ENERGY].sum(), out

        gradient, out = torch.func.grad(energy, has_aux=True)(batch.positions)
        return {**out, Property.FORCES: -gradient}

    print(f"eager: {milliseconds(eager_step):.3f} ms/step plain, kernels {kernels(eager_step)}", flush=True)
    print(f"eager graphed: {milliseconds(graphed(eager_step)):.3f} ms/step", flush=True)
    for mode in sys.argv[1:] or ["default"]:
        try:
            torch._dynamo.reset()
            compiled = torch.compile(outputs, dynamic=False, fullgraph=True, mode=None if mode == "default" else mode)

            def compiled_step():
                return torch.autograd.grad(loss_of(compiled(padded)), params, allow_unused=True)

            start = time.perf_counter()
            compiled_step()
            sync()
            print(f"compiled ({mode}): compile {time.perf_counter() - start:.1f} s", flush=True)
            compare(model, eager_step(), compiled_step())
            print(f"  {milliseconds(compiled_step):.3f} ms/step plain, kernels {kernels(compiled_step)}", flush=True)
            print(f"  graphed: {milliseconds(graphed(compiled_step)):.3f} ms/step", flush=True)
        except Exception as error:  # a probe: report and go on to the next mode
            print(f"compiled ({mode}) failed: {type(error).__name__}: {str(error).splitlines()[0][:300]}", flush=True)
            traceback.print_exc(limit=3)


if __name__ == "__main__":
    main()
