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


def strained(
    positions: torch.Tensor, cell: torch.Tensor, strain: torch.Tensor, structure: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and cell deformed by the symmetric part of ``strain`` (zero: unchanged, but differentiable).

    ``r' = r (1 + e)``, ``cell' = cell (1 + e)`` with ``e = (strain + strain^T) / 2`` per structure,
    so ``dE/dstrain`` at ``strain = 0`` is the energy's strain derivative, ``-virial``.

    Args:
        positions: ``[n_atoms, 3]``.
        cell: ``[n_structures, 3, 3]``, rows are cell vectors.
        strain: ``[n_structures, 3, 3]``, zeros that require grad.
        structure: ``[n_atoms]`` structure id of each atom.

    Returns:
        ``positions [n_atoms, 3]`` and ``cell [n_structures, 3, 3]``.
    """
    symmetric = 0.5 * (strain + strain.transpose(1, 2))
    positions = positions + torch.einsum("ak,akl->al", positions, symmetric[structure])
    return positions, cell + torch.bmm(cell, symmetric)


def stress_from_strain_derivative(d_strain: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """Stress ``(1/V) dE/dstrain`` ``[n_structures, 3, 3]`` (eV/Angstrom^3, ASE's sign: positive under tension).

    Zero for structures that are not periodic in all three directions (their
    ``cell`` rows are zero there, so no volume): finite, so that padding and
    mixed batches stay finite; ``predict`` reports NaN for them.
    """
    volume = torch.linalg.det(cell).abs()  # [n_structures]
    stress = d_strain / volume.clamp(min=1e-12)[:, None, None]
    return torch.where((volume > 0)[:, None, None], stress, torch.zeros_like(stress))
