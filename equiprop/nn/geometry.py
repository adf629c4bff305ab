"""Edge geometry computed from positions inside the forward pass (so autograd gives forces)."""

import torch

from equiprop.nn.scatter import gather_rows


def edge_vectors(
    positions: torch.Tensor,
    edge_index: torch.Tensor,
    cell_shifts: torch.Tensor,
    cell: torch.Tensor,
    structure: torch.Tensor,
) -> torch.Tensor:
    """Vectors ``r_ij = r_j - r_i + S_ij @ cell`` from receiver i to sender j.

    Args:
        positions: ``[n_atoms, 3]``.
        edge_index: ``[2, n_edges]`` (receiver i, sender j).
        cell_shifts: ``[n_edges, 3]`` integer multiples of the cell vectors.
        cell: ``[n_structures, 3, 3]``, rows are cell vectors.
        structure: ``[n_atoms]`` structure id of each atom.

    Returns:
        ``[n_edges, 3]``, Angstrom.
    """
    i, j = edge_index
    shift = torch.einsum("ek,ekl->el", cell_shifts, cell[structure[i]])  # [n_edges, 3]
    return gather_rows(positions, j) - gather_rows(positions, i) + shift
