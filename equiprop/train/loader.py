"""Batches for the training loop through a DataLoader (worker processes, pinned memory).

Graphs are built once per structure (:class:`equiprop.train.data.LabelledSet`);
workers only concatenate them. With ``num_workers=0`` batches are built in the
training process, which is fastest for small molecules on CPU; on GPUs and for
large structures, workers build the next batches while the device computes,
and pinned memory lets the host-to-device copy run asynchronously.
"""

import torch
from torch.utils.data import DataLoader, Dataset

from equiprop.train.data import LabelledSet, make_batch


class IndexBatches(Dataset):
    """Item k is the CPU batch (graphs, labels) of the k-th index list, floats cast to ``dtype``."""

    def __init__(self, data: LabelledSet, index_batches, dtype: torch.dtype):
        self.data, self.index_batches, self.dtype = data, list(index_batches), dtype

    def __len__(self) -> int:
        return len(self.index_batches)

    def __getitem__(self, k: int):
        return make_batch(self.data, self.index_batches[k], dtype=self.dtype)


def batch_loader(data: LabelledSet, index_batches, dtype: torch.dtype, num_workers: int = 0, pin_memory: bool = False):
    """Iterate the batches in the given order (``batch_size=None``: each item is already a batch)."""
    return DataLoader(IndexBatches(data, index_batches, dtype), batch_size=None, shuffle=False, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=False)
