"""Data-parallel training under ``torchrun``: ranks, devices and exact reductions.

``torchrun --nproc_per_node N -m equiprop train ...`` starts N processes and
sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; each process trains a
:class:`torch.nn.parallel.DistributedDataParallel` copy of the model on its
share of every global batch. Without those variables everything runs as one
process and no process group is created. Design notes: docs/distributed.md.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from equiprop.errors import InputError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # rank on this node: picks the GPU

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs, metrics and plots."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def ranks_from_env() -> Ranks:
    """Ranks from torchrun's environment variables (one process when they are absent)."""
    try:
        return Ranks(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise InputError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None


def resolve_device(name: str, ranks: Ranks) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:k``; under torchrun, ``cuda`` means this node's GPU ``LOCAL_RANK``."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r} (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {name!r}: no CUDA device is available (torch.cuda.is_available() is False)")
        index = ranks.local_rank if ranks.distributed and device.index is None else (device.index or 0)
        if index >= torch.cuda.device_count():
            raise InputError(f"device cuda:{index}: only {torch.cuda.device_count()} CUDA device(s) visible")
        torch.cuda.set_device(index)
        device = torch.device("cuda", index)
    elif device.type != "cpu":
        raise InputError(f"unsupported device {name!r} (use cpu, cuda or cuda:N)")
    return device


def start(device_name: str) -> tuple[Ranks, torch.device, bool]:
    """Ranks and device of this process; joins the process group under torchrun (NCCL on GPUs, gloo on CPUs).

    The last value says whether this call created the process group (then :func:`stop` should end it).
    """
    ranks = ranks_from_env()
    device = resolve_device(device_name, ranks)
    joined = ranks.distributed and not dist.is_initialized()
    if joined:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return ranks, device, joined


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks (in place; a no-op for one process)."""
    if ranks.distributed:
        dist.all_reduce(tensor)
    return tensor


def average_gradients(parameters, ranks: Ranks) -> None:
    """Average the parameters' gradients over the ranks in one all-reduce, as DDP does (a no-op for one process).

    For steps that bypass DDP's forward, whose reducer then never runs: the
    compiled steps of ``--compile`` call the model's own outputs function.
    """
    if not ranks.distributed:
        return
    gradients = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in gradients])  # [n_parameters]
    dist.all_reduce(flat)
    flat /= ranks.world_size
    for gradient, average in zip(gradients, flat.split([g.numel() for g in gradients])):
        gradient.copy_(average.view_as(gradient))


def shard(indices: np.ndarray, ranks: Ranks) -> np.ndarray:
    """This rank's part of a global batch: contiguous, sizes differing by at most one."""
    return np.array_split(np.asarray(indices), ranks.world_size)[ranks.rank]


def on_main(action, ranks: Ranks):
    """Run ``action()`` on rank 0 only and share its result, or re-raise its InputError on every rank."""
    outcome = [None, None]
    if ranks.is_main:
        try:
            outcome = [action(), None]
        except InputError as error:
            outcome = [None, str(error)]
    if ranks.distributed:
        dist.broadcast_object_list(outcome, src=0)
    if outcome[1] is not None:
        raise InputError(outcome[1])
    return outcome[0]


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        dist.barrier()
