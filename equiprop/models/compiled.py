"""``torch.compile`` of a model's outputs with forces (``TrainConfig.compile``, ``equiprop train --compile``).

A compiled graph cannot be differentiated twice, so the forces are not taken by
``torch.autograd.grad(create_graph=True)`` as in :meth:`AtomisticModel.forward`
but by ``torch.func.grad`` inside the compiled function, from
:meth:`AtomisticModel.outputs`: the training loss then needs only a first-order
backward of one compiled graph. Shapes vary from batch to batch, so the function
is compiled with dynamic shapes, on a CPU with Inductor's C++ graph wrapper.
Opt-in: on the project's 2-core CPU it takes about 2 minutes to compile SO3Net
(seconds from the disk cache later), and the trainer then runs about 1.5x faster
(lmax 2: 321-388 against 190-240 structures/s in 300 s benchmark runs;
docs/performance.md, steps 21-24). On a GPU the trainer's CUDA graphs are the
default instead. Energies and forces as in eager mode, parameter gradients to
~5e-7. Under compile SO3Net keeps every
activation of large batches (its checkpointing cannot run inside
``torch.func.grad``). :func:`compiled_inference` is the same function for
prediction (the ASE calculator, ``equiprop predict --compile``).
"""

from typing import Callable

import torch

from equiprop.data.batch import GraphBatch
from equiprop.errors import SetupError
from equiprop.models.base import needs_eager
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

    # on a CPU the compiled graphs' wrapper (allocations, ~150 kernel and library calls per step) is C++ rather than
    # Python: bare compiled step at lmax 2 458 -> 496 structures/s (docs/performance.md, step 24); GPU keeps the default
    on_cpu = next(model.parameters()).device.type == "cpu"
    compiled = torch.compile(outputs, dynamic=True, fullgraph=True, options={"cpp_wrapper": True} if on_cpu else None)

    def run(batch: GraphBatch) -> dict[Property, torch.Tensor]:
        if needs_eager(model, batch):  # periodic cells with electrostatics: the Ewald sum runs eagerly
            return outputs(batch)
        try:
            return compiled(batch)
        except (torch._dynamo.exc.BackendCompilerFailed, torch._dynamo.exc.TorchRuntimeError) as error:
            # BackendCompilerFailed: Inductor's own errors; TorchRuntimeError: tracing failed, as PyTorch 2.11 on CUDA
            # does in torch.func.grad with dynamic shapes (pytorch/pytorch#171537; docs/performance.md, step 26)
            inner = getattr(error, "inner_exception", None) or error.__cause__ or error
            first_line = (str(inner).strip().splitlines() or [""])[0]
            reason = f"{type(inner).__name__}: {first_line}"
            raise SetupError(f"torch.compile could not compile the model ({reason}); run without --compile (compile=False) "
                             "(on a CPU, PyTorch Inductor also needs a C++ compiler)") from error

    return run


def compiled_inference(model) -> Callable[[GraphBatch], dict[Property, torch.Tensor]]:
    """``batch -> outputs`` (forces with energies) for prediction, compiled once for every batch size.

    Runs without parameter gradients (the graph keeps nothing for a training
    backward); put the model in eval mode and keep its parameters in place. On
    the project's 2-core CPU, SO3Net (lmax 2) evaluated one water cluster per
    call, as the ASE calculator does in molecular dynamics, 675 against 188
    structures/s eagerly, and batches of 16 at 847 against 484 (docs/performance.md,
    step 25); compiling takes up to a minute, seconds from the disk cache.
    """
    run = compiled_outputs(model, Property.ENERGY in model.targets)

    def infer(batch: GraphBatch) -> dict[Property, torch.Tensor]:
        with torch.no_grad():  # the parameters; torch.func.grad still differentiates by the positions
            return run(batch)

    return infer
