"""Training steps replayed from CUDA graphs (``TrainConfig.cuda_graphs``, ``equiprop train --cuda-graphs``).

On a GPU a training step of SO3Net is about 1,900 small kernels, and at batch
16 the GPU computes for less than a tenth of the step: the rest is the host
launching kernels (docs/benchmarks.md). A CUDA graph records the whole step
once (forward, forces, backward, gradient clipping, AdamW) and replays it with
one launch. A graph holds fixed shapes and addresses, so each batch is padded to
a bucket (``equiprop/data/padding.py``) and copied into that bucket's static
input tensors; one graph is recorded per bucket, all in one memory pool.

Sharing the pool between graphs is safe here because nothing a graph allocates
outlives its replay: gradients, optimiser state and the outputs (loss and error
sums) live outside the pool, written by the graph in place.

The first step runs eagerly on a side stream (it creates the gradients and the
optimiser state and initialises the libraries, as CUDA graph capture requires);
so does every step of a bucket beyond ``max_graphs``. Recording a graph does not
run it: the step that records is replayed at once.
"""

from typing import Callable

import torch

from equiprop.data import padding
from equiprop.data.padding import PaddedBatch, PaddedShape

#: ``step(padded) -> (loss [], error sums [n_targets, 3])``: zeroes the gradients, computes the loss, steps the optimiser.
Step = Callable[[PaddedBatch], tuple[torch.Tensor, torch.Tensor]]


class _Bucket:
    """One bucket's graph, static inputs on the GPU and a pinned host copy for the asynchronous upload."""

    def __init__(self, padded: PaddedBatch, device: torch.device):
        self.static = padded.map(lambda t: torch.empty_like(t, device=device))
        self.staging = [torch.empty_like(t, pin_memory=True) for t in padded.tensors()]
        self.uploaded = None  # event: the last upload from ``staging`` has finished
        self.graph = None

    def load(self, padded: PaddedBatch) -> None:
        """Copy ``padded`` (on the CPU) into the static inputs, asynchronously through pinned memory."""
        if self.uploaded is not None:
            self.uploaded.synchronize()  # the previous upload has read the staging memory
        for host, source, target in zip(self.staging, padded.tensors(), self.static.tensors()):
            host.copy_(source)
            target.copy_(host, non_blocking=True)
        self.uploaded = torch.cuda.Event()
        self.uploaded.record()


class GraphedSteps:
    """Calls ``step`` on padded batches, replaying one recorded CUDA graph per padded shape.

    ``loss`` and ``sums`` are overwritten by every call: read (or copy) them before the next one.
    """

    def __init__(self, step: Step, n_targets: int, device: torch.device, max_graphs: int | None = None):
        self.step, self.device = step, device
        self.max_graphs = padding.MAX_GRAPHS if max_graphs is None else max_graphs
        self.buckets: dict[PaddedShape, _Bucket] = {}
        self.pool = torch.cuda.graph_pool_handle()
        self.warm = False
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.sums = torch.zeros(n_targets, 3, device=device, dtype=torch.float64)
        self.replays = self.eager_steps = 0

    @property
    def n_graphs(self) -> int:
        return sum(b.graph is not None for b in self.buckets.values())

    def __call__(self, padded: PaddedBatch, shape: PaddedShape) -> tuple[torch.Tensor, torch.Tensor]:
        """One training step on ``padded`` (CPU tensors of ``shape``); returns the static ``(loss, sums)``."""
        bucket = self.buckets.get(shape)
        if bucket is None:
            if len(self.buckets) >= self.max_graphs and self.warm:  # too many shapes: this one runs eagerly
                return self._eager(padded.map(lambda t: t.to(self.device, non_blocking=True)))
            bucket = self.buckets[shape] = _Bucket(padded, self.device)
        bucket.load(padded)
        if not self.warm:  # first step: eager, on a side stream, before any capture
            self.warm = True
            return self._eager(bucket.static, side_stream=True)
        if bucket.graph is None:
            self._capture(bucket)
        bucket.graph.replay()
        self.replays += 1
        return self.loss, self.sums

    def _run(self, inputs: PaddedBatch) -> None:
        loss, sums = self.step(inputs)
        self.loss.copy_(loss)
        self.sums.copy_(sums)

    def _eager(self, inputs: PaddedBatch, side_stream: bool = False):
        self.eager_steps += 1
        if not side_stream:
            self._run(inputs)
            return self.loss, self.sums
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self._run(inputs)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        return self.loss, self.sums

    def _capture(self, bucket: _Bucket) -> None:
        torch.cuda.synchronize(self.device)
        bucket.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(bucket.graph, pool=self.pool):
            self._run(bucket.static)

