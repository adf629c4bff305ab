"""equiprop: invariant and SO(3)-equivariant message passing for molecular properties.

Public names: :class:`SchNet`, :class:`SO3Net`, :class:`Property`,
:class:`InputError`. Everything else is reachable from the subpackages
(``equiprop.data``, ``equiprop.nn``, ``equiprop.models``).
"""

from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.models import SchNet, SO3Net

__version__ = "0.1.0"
__all__ = ["InputError", "Property", "SO3Net", "SchNet", "__version__"]
