"""Inference replayed from CUDA graphs: a model's outputs and forces, one recorded graph per padded batch shape.

Molecular dynamics with the ASE calculator evaluates one structure per call,
and on a GPU such a call is a few hundred small kernels, each launched from
the host: the GPU idles. As in training (``equiprop/train/cuda_graphs.py``),
each batch is padded to a bucket (``equiprop/data/padding.py``), copied into
that bucket's static inputs, and the recorded kernels are replayed at once.
The outputs are the first rows of the padded outputs (padding atoms and
structures come last) and are overwritten by the next call.

The model must stay in eval mode and keep its parameters in place (in-place
updates are seen by the graphs; new tensors are not).
"""

import torch

from equiprop.data.batch import GraphBatch
from equiprop.keys import PER_STRUCTURE, Property
from equiprop.data import padding
from equiprop.data.padding import PaddedBatch, PaddedShape, pad_batch
from equiprop.models.base import needs_eager

Outputs = dict[Property, torch.Tensor]


def detached_outputs(model, batch: GraphBatch, with_forces: bool) -> Outputs:
    """The model's outputs (and forces) on ``batch``, detached; on a padded batch, padded:
    ``[atoms]``/``[structures + 1]`` rows."""
    with torch.set_grad_enabled(with_forces):
        out = model(batch, compute_forces=with_forces)
    return {p: v.detach() for p, v in out.items()}


def unpad(outputs: Outputs, n_atoms: int, n_structures: int) -> Outputs:
    """The rows of the real atoms and structures (they come first)."""
    return {p: v[:n_structures] if p in PER_STRUCTURE else v[:n_atoms] for p, v in outputs.items()}


class _Bucket:
    def __init__(self, padded: PaddedBatch, device: torch.device):
        self.static = padded.map(lambda t: torch.empty_like(t, device=device))
        self.graph, self.outputs = None, None


class GraphedInference:
    """``model(batch, compute_forces=...)`` for CPU batches of at most ``structures`` structures, replayed on a GPU.

    ``__call__`` returns the real rows of the static outputs, on the GPU: copy
    or read them before the next call.
    """

    def __init__(self, model, structures: int, max_graphs: int | None = None):
        self.model, self.structures = model, structures
        self.device = next(model.parameters()).device
        self.with_forces = Property.ENERGY in model.targets
        self.max_graphs = padding.MAX_GRAPHS if max_graphs is None else max_graphs
        self.buckets: dict[PaddedShape, _Bucket] = {}
        self.pool = torch.cuda.graph_pool_handle()
        self.warm = False
        self.replays = self.eager_calls = 0

    def __call__(self, batch: GraphBatch) -> Outputs:
        shape = PaddedShape.of(batch, self.structures)
        bucket = self.buckets.get(shape)
        # no graph left, or periodic cells with electrostatics (models/base.py: needs_eager): the batch as it is, eagerly
        if (bucket is None and len(self.buckets) >= self.max_graphs) or needs_eager(self.model, batch):
            self.eager_calls += 1
            return detached_outputs(self.model, batch.to(self.device), self.with_forces)
        padded = pad_batch(batch, {}, shape, self.model.cutoff)
        n_atoms, n_structures = batch.positions.shape[0], batch.n_structures
        if bucket is None:
            bucket = self.buckets[shape] = _Bucket(padded, self.device)
        for source, target in zip(padded.tensors(), bucket.static.tensors()):
            target.copy_(source)
        if not self.warm:  # the first call runs eagerly on a side stream: lazy initialisation before any capture
            self.warm = True
            self.eager_calls += 1
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                outputs = detached_outputs(self.model, bucket.static.batch, self.with_forces)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            return unpad(outputs, n_atoms, n_structures)
        if bucket.graph is None:
            torch.cuda.synchronize(self.device)
            bucket.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(bucket.graph, pool=self.pool):
                bucket.outputs = detached_outputs(self.model, bucket.static.batch, self.with_forces)
        bucket.graph.replay()
        self.replays += 1
        return unpad(bucket.outputs, n_atoms, n_structures)
