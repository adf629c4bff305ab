"""Networks assembled from :mod:`equiprop.nn`."""

from equiprop.models.base import AtomisticModel
from equiprop.models.schnet import SchNet
from equiprop.models.so3net import SO3Net

__all__ = ["AtomisticModel", "SO3Net", "SchNet"]
