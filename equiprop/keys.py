"""Names of the properties a model predicts, with their shapes and units.

One place for these names: models, data readers and the command line use the
members of :class:`Property`, never bare strings. ``Property`` is a ``StrEnum``,
so users may pass plain strings such as ``"charges"``.
"""

from enum import StrEnum


class Property(StrEnum):
    """A predicted property (shape for a batch, unit)."""

    CHARGES = "charges"  # [n_atoms], e (per atom)
    DIPOLE = "dipole"  # [n_structures, 3], e*Angstrom
    DIPOLE_MAGNITUDE = "dipole_magnitude"  # [n_structures], e*Angstrom, |dipole| (for data that give only |mu|)
    ENERGY = "energy"  # [n_structures], eV
    FORCES = "forces"  # [n_atoms, 3], eV/Angstrom, -dE/dpositions
    STRESS = "stress"  # [n_structures, 3, 3], eV/Angstrom^3, (1/V) dE/dstrain (ASE's sign); periodic cells only
    QUADRUPOLE = "quadrupole"  # [n_structures, 3, 3], e*Angstrom^2, traceless, about the geometric centre; open structures
    POLARIZABILITY = "polarizability"  # [n_structures, 3, 3], Angstrom^3, symmetric (static, alpha / (4 pi eps0)); open

    @classmethod
    def parse(cls, names) -> tuple["Property", ...]:
        """Turn user-given target names into properties, in a fixed order.

        ``forces`` implies ``energy`` (forces are its gradient). Raises ValueError
        naming the unknown target and listing the valid ones. ``stress`` implies
        ``energy`` too (it is the energy's strain derivative; cells periodic in x, y and z).
        """
        if isinstance(names, str):
            names = [n for n in names.split(",") if n.strip()]
        found = set()
        valid = ", ".join(p.value for p in cls)
        for name in names:
            try:
                found.add(cls(str(name).strip()))
            except ValueError:
                raise ValueError(f"unknown target {name!r}; valid targets: {valid}") from None
        if not found:
            raise ValueError("no targets given; choose from " + valid)
        if cls.FORCES in found or cls.STRESS in found:
            found.add(cls.ENERGY)
        return tuple(p for p in cls if p in found)


#: Properties with one value (or vector) per structure; the others have one per atom.
PER_STRUCTURE = frozenset({Property.ENERGY, Property.DIPOLE, Property.DIPOLE_MAGNITUDE, Property.STRESS,
                           Property.QUADRUPOLE, Property.POLARIZABILITY})

#: Per-structure total charge read from ``atoms.info`` (e); 0 when absent.
TOTAL_CHARGE_KEY = "charge"


def is_per_atom(name: str) -> bool:
    """Whether a prediction key (``"forces"``, or a committee's ``"forces_std"``) has one value per atom."""
    return Property(str(name).removesuffix("_std")) not in PER_STRUCTURE
