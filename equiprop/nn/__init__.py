"""Building blocks: radial bases, embeddings, convolutions, gates and readouts."""

from equiprop.nn.cfconv import CFConv, SchNetInteraction
from equiprop.nn.embedding import ElementEmbedding
from equiprop.nn.gate import GatedNonlinearity
from equiprop.nn.geometry import edge_vectors
from equiprop.nn.irreps import coupling_paths, n_components
from equiprop.nn.product import BodyOrderProduct
from equiprop.nn.radial import CosineCutoff, GaussianRBF
from equiprop.nn.readout import ChargeSpread, ScalarReadout, VectorReadout, constrain_charges
from equiprop.nn.scatter import gather_rows, scatter_sum
from equiprop.nn.so3block import SO3Interaction
from equiprop.nn.so3conv import SO3Convolution
from equiprop.nn.so3linear import SO3Linear

__all__ = [
    "BodyOrderProduct",
    "CFConv",
    "ChargeSpread",
    "CosineCutoff",
    "ElementEmbedding",
    "GatedNonlinearity",
    "GaussianRBF",
    "SO3Convolution",
    "SO3Interaction",
    "SO3Linear",
    "ScalarReadout",
    "SchNetInteraction",
    "VectorReadout",
    "constrain_charges",
    "edge_vectors",
    "gather_rows",
    "coupling_paths",
    "n_components",
    "scatter_sum",
]
