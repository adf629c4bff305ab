"""Training: configuration, data batches, losses, metrics, the loop, committees, evaluation.

What prediction needs (padding, CUDA-graph replay, compiled runners, the allocator
setting, energy references, checkpoints) lives below, in ``equiprop.data`` and ``equiprop.models``.
"""
