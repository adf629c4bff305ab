"""``torch.compile`` of a model's outputs with forces (``TrainConfig.compile``, ``equiprop train --compile``).

A compiled graph cannot be differentiated twice, so the forces are not taken by
``torch.autograd.grad(create_graph=True)`` as in :meth:`AtomisticModel.forward`
but by ``torch.func.grad`` inside the compiled function, from
:meth:`AtomisticModel.outputs`: the training loss then needs only a first-order
backward of one compiled graph. Shapes vary from batch to batch, so the function
is compiled with dynamic shapes. Experimental: on the project's 2-core CPU
(docs/performance.md, step 16) it takes about 80 s to compile SO3Net and a bare
training step runs 9% faster, but the trainer showed no gain (217 vs 224
structures/s); meant for GPUs, where a step is ~1,900 small kernels (not
measured yet). Energies and forces as in eager mode, parameter gradients to ~5e-7.
"""

from typing import Callable

import torch

from equiprop.data.batch import GraphBatch
from equiprop.keys import Property


def compiled_outputs(model, with_forces: bool) -> Callable[[GraphBatch], dict[Property, torch.Tensor]]:
    """``batch -> outputs`` (with ``forces = -dE/dr`` if ``with_forces``), compiled; the model stays as it is."""

    def outputs(batch: GraphBatch) -> dict[Property, torch.Tensor]:
        if not with_forces:
            return model.outputs(batch, batch.positions)

        def energy(positions):
            out = model.outputs(batch, positions)
            return out[Property.ENERGY].sum(), out

        gradient, out = torch.func.grad(energy, has_aux=True)(batch.positions)
        return {**out, Property.FORCES: -gradient}

    return torch.compile(outputs, dynamic=True, fullgraph=True)
