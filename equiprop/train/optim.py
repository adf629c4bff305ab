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


class MovingAverage:
    """EMA of a model's parameters and buffers: ``average`` (an ``AveragedModel``, its state and ``.module``) and ``update()``.

    The decay is ``min(decay, (1 + n) / (10 + n))`` after n updates; the first
    copies. Early averages are not dominated by the random initial weights (as
    in TensorFlow's ExponentialMovingAverage with ``num_updates``). The count
    ``n`` stays on the CPU and the update is one multi-tensor ``lerp`` over
    tensor lists gathered once, so a GPU step is not waited for
    (``AveragedModel.update_parameters`` reads its count on the device) and a
    CPU step does not walk the module tree (2.4 ms of a 80 ms step when it did).
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        self.average, self.decay = AveragedModel(model, use_buffers=True), decay
        pairs = zip(itertools.chain(self.average.module.parameters(), self.average.module.buffers()),
                    itertools.chain(model.parameters(), model.buffers()))
        self.floats, self.integers = ([], []), ([], [])
        for a, c in pairs:
            target = self.floats if a.is_floating_point() else self.integers
            target[0].append(a.detach())
            target[1].append(c.detach())

    def update(self) -> None:
        n = int(self.average.n_averaged)
        (averaged, current), (averaged_ints, current_ints) = self.floats, self.integers
        if n == 0:
            torch._foreach_copy_(averaged, current)
        else:
            torch._foreach_lerp_(averaged, current, 1.0 - min(self.decay, (1.0 + n) / (10.0 + n)))
        if averaged_ints:  # index tables
            torch._foreach_copy_(averaged_ints, current_ints)
        self.average.n_averaged += 1
