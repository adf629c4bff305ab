"""equiprop: invariant and SO(3)-equivariant message passing for molecular properties.

Public names: :class:`SchNet`, :class:`SO3Net` (models), :func:`load_model` (a
trained checkpoint, or a committee), :class:`EquipropCalculator` (ASE),
:mod:`datasets` (the shipped data), :class:`Property`, :class:`InputError`.
Everything else is reachable from the subpackages, which depend only on those
below them: ``data`` -> ``nn`` -> ``models`` -> ``train`` -> ``cli``.
"""

from equiprop import datasets
from equiprop.calculator import EquipropCalculator
from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.models import SchNet, SO3Net
from equiprop.models.checkpoint import load_model

__version__ = "0.1.0"
__all__ = ["EquipropCalculator", "InputError", "Property", "SO3Net", "SchNet", "datasets", "load_model", "__version__"]
