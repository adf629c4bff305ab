"""An equiprop model as a force client of i-PI (path integrals, many beads, many clients).

i-PI's own Python driver speaks the socket protocol (UNIX or TCP, batched
requests, shared memory); this file is the potential it calls, loaded by
``i-pi-py_driver -m custom -P <this file>``. ``equiprop ipi`` builds that
command line (``equiprop/cli/ipi.py``). Several clients on one address share
the beads: i-PI hands each request to whichever client is free.

Units: i-PI sends cells and positions in Bohr and takes Hartree, Hartree/Bohr
and a virial in Hartree; the model works in Angstrom and eV. Each result
carries JSON extras that i-PI writes per bead (``<trajectory extra_type=...>``):
``dipole`` (3 numbers, e*Bohr, i-PI's atomic units; open structures only) and
``charges`` (one per atom, e); a committee adds ``energy_std`` (Hartree) and
``forces_std`` (one per atom, Hartree/Bohr).
"""

import json

import numpy as np
from ase.io import read
from ipi.pes.dummy import Dummy_driver
from ipi.utils.units import unit_to_internal, unit_to_user

from equiprop.models.checkpoint import load_model
from equiprop.models.committee import Committee

__DRIVER_NAME__ = "equiprop"
__DRIVER_CLASS__ = "EquipropDriver"


class EquipropDriver(Dummy_driver):
    """i-PI potential from an equiprop checkpoint.

    Args:
        template: a structure file ASE reads (the same atoms, in the same order,
            as i-PI's initial structure): gives the elements, and whether the
            system is periodic (its ``pbc``; an open template ignores i-PI's cell).
        checkpoint: ``best.pt`` of a model or committee with the energy target.
        device: ``cpu`` or ``cuda``.
        batch_size: structures per model call when i-PI sends batches
            (``<ffsocket><batch_size>``): the beads of a step in one forward pass.
    """

    def __init__(self, template, checkpoint, device="cpu", batch_size=32, *args, **kwargs):
        self.template, self.checkpoint, self.device, self.batch_size = template, checkpoint, device, int(batch_size)
        super().__init__(*args, **kwargs)

    def check_parameters(self):
        self.atoms = read(self.template)
        self.periodic = bool(self.atoms.pbc.all())
        if self.atoms.pbc.any() and not self.periodic:
            raise ValueError(f"{self.template}: periodic in some directions only; i-PI needs all three or none")
        self.model = load_model(self.checkpoint, self.device)
        if "energy" not in self.model.targets:
            raise ValueError(f"{self.checkpoint}: the model predicts no energy, so it cannot drive dynamics")
        self.committee = isinstance(self.model, Committee)

    def compute(self, cell, pos):
        """One structure (``cell [3, 3]`` Bohr, columns are cell vectors; ``pos [n_atoms, 3]`` Bohr) or lists of them."""
        if isinstance(cell, list):
            return self.compute_batch(cell, pos)
        return self.compute_batch([cell], [pos])[0]

    def compute_structure(self, cell, pos):
        return self.compute(cell, pos)

    def compute_batch(self, cells, positions) -> list[tuple[float, np.ndarray, np.ndarray, str]]:
        """(energy Hartree, forces ``[n_atoms, 3]`` Hartree/Bohr, virial ``[3, 3]`` Hartree, JSON extras) per structure."""
        frames = [self._structure(cell, pos) for cell, pos in zip(cells, positions)]
        out = self.model.predict(frames, batch_size=self.batch_size, stress=self.periodic)
        results = []
        for k, atoms in enumerate(frames):
            energy = unit_to_internal("energy", "electronvolt", float(out["energy"][k]))
            forces = np.asarray(unit_to_internal("force", "ev/ang", out["forces"][k].astype(np.float64)), np.float64)
            virial = np.zeros((3, 3))
            if self.periodic:  # virial = -stress * volume (symmetric, so i-PI's transpose convention does not matter)
                virial = unit_to_internal("energy", "electronvolt", -out["stress"][k].astype(np.float64) * atoms.get_volume())
            results.append((energy, forces, np.asarray(virial, np.float64), json.dumps(self._extras(out, k))))
        return results

    def _structure(self, cell, pos):
        atoms = self.atoms.copy()
        if len(pos) != len(atoms):
            raise ValueError(f"i-PI sent {len(pos)} atoms; the template {self.template} has {len(atoms)}")
        atoms.positions = unit_to_user("length", "angstrom", np.asarray(pos, dtype=np.float64).reshape(-1, 3))
        if self.periodic:
            atoms.cell = unit_to_user("length", "angstrom", np.asarray(cell, dtype=np.float64).T)
        return atoms

    def _extras(self, out: dict, k: int) -> dict:
        extras = {}
        if "dipole" in out and not self.periodic:
            extras["dipole"] = unit_to_internal("length", "angstrom", out["dipole"][k].astype(np.float64)).tolist()
        if "charges" in out:
            extras["charges"] = out["charges"][k].astype(np.float64).tolist()
        if "energy_std" in out:
            extras["energy_std"] = float(unit_to_internal("energy", "electronvolt", float(out["energy_std"][k])))
            extras["forces_std"] = unit_to_internal("force", "ev/ang", out["forces_std"][k].astype(np.float64)).tolist()
        return extras
