"""The optimiser and the moving average of the weights, both without host-device synchronisation."""

import itertools

import torch
from torch.optim.swa_utils import AveragedModel


def adamw(model: torch.nn.Module, lr: float, weight_decay: float, capturable: bool = False) -> torch.optim.AdamW:
    """AdamW as one fused kernel per step where the device has it (CPU and CUDA do), else multi-tensor.

    PyTorch's CPU default is a Python loop over the parameter tensors with
    several small copies each; for SO3Net the multi-tensor version took 0.79 ms
    per step and the fused one 0.26 ms (docs/performance.md, step 13). With
    ``capturable`` (CUDA graphs) the learning rate is a tensor on the model's
    device, so the scheduler's changes reach recorded steps (it updates the
    tensor in place); float32, as the fused CUDA kernel reads it (a relative
    rounding of ~1e-8 of the learning rate).
    """
    if capturable:
        device = next(model.parameters()).device
        lr = torch.tensor(lr, device=device, dtype=torch.float32)  # the fused CUDA kernel reads a float32 learning rate
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay,
                                 fused=True, capturable=True)
    try:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)


def set_lr_kind(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """After loading a state: the learning rate as a device tensor (``capturable``) or a float, as the optimiser needs."""
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        group["lr"] = torch.tensor(lr, device=group["params"][0].device, dtype=torch.float32) if capturable else lr
        group["capturable"] = capturable


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """``optimizer.state_dict()`` with float learning rates: checkpoints are the same with and without CUDA graphs."""
    state = optimizer.state_dict()
    for group in state["param_groups"]:
        group["lr"] = float(group["lr"])
        group["capturable"] = False
    return state


def moving_average(model: torch.nn.Module) -> AveragedModel:
    """A copy of ``model`` (parameters and buffers) to average with :func:`update_average`."""
    return AveragedModel(model, use_buffers=True)


def update_average(average: AveragedModel, model: torch.nn.Module, decay: float) -> None:
    """EMA with warm-up: the decay is ``min(decay, (1 + n) / (10 + n))`` after n updates; the first copies.

    Early averages are not dominated by the random initial weights (as in
    TensorFlow's ExponentialMovingAverage with ``num_updates``). The count
    ``n`` stays on the CPU and the update is one multi-tensor ``lerp``, so a
    GPU step is not waited for (``AveragedModel.update_parameters`` reads its
    count on the device).
    """
    n = int(average.n_averaged)
    pairs = zip(itertools.chain(average.module.parameters(), average.module.buffers()),
                itertools.chain(model.parameters(), model.buffers()))
    floats, integers = [], []
    for a, c in pairs:
        (floats if a.is_floating_point() else integers).append((a.detach(), c.detach()))
    if n == 0:
        torch._foreach_copy_([a for a, _ in floats], [c for _, c in floats])
    else:
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_([a for a, _ in floats], [c for _, c in floats], weight)
    for a, c in integers:  # index tables
        a.copy_(c)
    average.n_averaged += 1
