"""Where a model's water-dimer interaction comes from: the monomers' own multipoles, and the rest.

``python bench/dimer_parts.py CHECKPOINT [--distances 4.5,5.0,5.5,6.0]`` (run from the repository
root; a model with ``--electrostatics multipole`` or ``polarizable``). At each O-O distance of the
rigid dimer of ``bench/dimer_curve.py`` it prints, in meV:
- ``whole``: the model's interaction energy ``E(dimer) - E(A) - E(B)``;
- ``frozen``: the multipole term (``nn/electrostatics.py``) between the two monomers with the
  multipoles each predicts alone, which is what a partner beyond the cutoff sees;
- ``rest``: ``whole - frozen``, in three parts:
  - ``response``: the multipole term with the multipoles predicted for the dimer, less ``frozen``
    (how the charges, dipoles and quadrupoles change with a partner within the cutoff);
  - ``induction``: the induction energy of a ``polarizable`` model (the only part left beyond the cutoff);
  - ``network``: the short-range network's atomic energies (zero once no pair is within the cutoff).
  PBE0/def2-SVP's interaction is -22.2 meV at 5.5 A, of which its own point multipoles give -20.7
  (docs/benchmarks.md "Induction beyond the cutoff", "Formal charges as features").
"""

import argparse
import sys
from pathlib import Path

import ase.io
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from dimer_curve import displaced, interaction  # the same rigid move along the O-O axis

from equiprop import EquipropCalculator
from equiprop.models.checkpoint import load_model

DIMER = Path(__file__).parent.parent / "data" / "dimer" / "pbe0_minimum.xyz"


def multipoles(model, atoms, seen):
    """Charges ``[n]``, atomic dipoles ``[n, 3]`` and quadrupoles ``[n, 3, 3]`` (or None) the model predicts."""
    charges = torch.tensor(model.predict([atoms])["charges"][0])
    return charges, seen["mu"].clone(), seen.get("theta")


def pair_energy(model, atoms, q, mu, theta, first: int = 3) -> float:
    """The multipole term between atoms ``:first`` and ``first:`` (meV)."""
    x, z = torch.tensor(atoms.positions), torch.zeros(len(atoms), dtype=torch.long)
    term = model.electrostatics
    parts = [term(q[s], x[s], z[s], 1, mu[s], None if theta is None else theta[s])
             for s in (slice(0, first), slice(first, None))]
    return 1000 * float(term(q, x, z, 1, mu, theta) - parts[0] - parts[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("--distances", default="4.5,5.0,5.5,6.0")
    args = parser.parse_args()
    model = load_model(args.checkpoint).double()
    if model.electrostatics is None or model.dipole_head is None:
        raise SystemExit(f"{args.checkpoint}: needs a model with multipole electrostatics")
    seen = {}
    model.dipole_head.register_forward_hook(lambda m, i, out: seen.__setitem__("mu", out.detach()))
    if model.quadrupole_head is not None:
        model.quadrupole_head.register_forward_hook(lambda m, i, out: seen.__setitem__("theta", out.detach()))
    model.electrostatics.register_forward_hook(lambda m, i, out: seen.__setitem__("multipole", float(out.detach().sum())))
    if model.induction is not None:
        model.induction.register_forward_hook(lambda m, i, out: seen.__setitem__("induction", float(out[0].detach().sum())))
    calculator = EquipropCalculator(model)

    def energies(atoms) -> np.ndarray:
        """``[whole, multipole term, induction]`` of one structure (eV)."""
        atoms = atoms.copy()
        atoms.calc = calculator
        seen.pop("induction", None)
        whole = atoms.get_potential_energy()
        return np.array([whole, seen["multipole"], seen.get("induction", 0.0)])

    dimer = ase.io.read(DIMER)
    print("r_OO     whole    frozen      rest  response induction   network  (meV)")
    for distance in (float(d) for d in args.distances.split(",")):
        moved = displaced(dimer, distance)
        alone = [multipoles(model, part, seen) for part in (moved[:3], moved[3:])]
        q, mu = torch.cat([a[0] for a in alone]), torch.cat([a[1] for a in alone])
        theta = None if alone[0][2] is None else torch.cat([a[2] for a in alone])
        whole, multipole, induction = 1000 * (energies(moved) - energies(moved[:3]) - energies(moved[3:]))
        frozen = pair_energy(model, moved, q, mu, theta)
        network = whole - multipole - induction
        print(f"{distance:4.1f} {whole:9.4f} {frozen:9.4f} {whole - frozen:9.4f} {multipole - frozen:9.4f} "
              f"{induction:9.4f} {network:9.4f}")


if __name__ == "__main__":
    main()
