"""ASE calculator for trained equiprop models."""

import warnings

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from equiprop.keys import Property
from equiprop.models.committee import Committee
from equiprop.models.graphed import GraphedInference
from equiprop.models.predict import predict
from equiprop.models.checkpoint import load_model
from equiprop.models.compiled import compiled_inference


class EquipropCalculator(Calculator):
    """Energy, forces, dipole and charges from a checkpoint (or a model) for ASE.

    Args:
        model: path of a checkpoint (``best.pt``) or a model instance.
        device: where to run; a model trained on GPU runs on CPU too.
        compile: evaluate through ``torch.compile`` (:func:`equiprop.models.compiled.compiled_inference`):
            compiled at the first call (up to a minute on a CPU; seconds from the disk
            cache), then one water cluster per call 3.6x faster on the project's 2-core CPU
            (docs/performance.md, step 25). For molecular dynamics.
        forces_std_warning: with a committee, warn once (``UserWarning``) when an atom's
            ``forces_std`` exceeds this many eV/Angstrom: the structure has left the
            region the members agree on (the training data's domain).

    Provides what the model was trained for: ``get_potential_energy``,
    ``get_forces`` and, for cells periodic in x, y and z, ``get_stress`` (energy models;
    the strain derivative of the energy by autograd, run eagerly), ``get_dipole_moment`` (open structures only: for
    a periodic cell ASE raises ``PropertyNotImplementedError``), ``get_charges``; a model with the
    quadrupole or polarizability target puts them in ``results`` (``[3, 3]``, open structures;
    ``calc.get_property("polarizability", atoms)``).
    A committee checkpoint (``equiprop train --ensemble N``) gives the members'
    means, and ``results["energy_std"]`` (eV) and ``results["forces_std"]``
    (``[n_atoms]``, eV/Angstrom; see :func:`equiprop.models.committee.spread`).
    """

    def __init__(self, model, device: str = "cpu", compile: bool = False, forces_std_warning: float | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.model = load_model(model, device) if not hasattr(model, "predict") else model.to(device).eval()
        self.committee = isinstance(self.model, Committee)
        if forces_std_warning is not None and not self.committee:
            raise ValueError("forces_std_warning needs a committee checkpoint (equiprop train --ensemble N)")
        if compile and self.committee:
            raise ValueError("compile=True is not available for a committee yet")
        self.forces_std_warning, self.warned = forces_std_warning, False
        self.runner = compiled_inference(self.model) if compile else None
        targets = self.model.targets
        names = {Property.ENERGY: ["energy", "free_energy", "forces", "stress"], Property.DIPOLE: ["dipole"],
                 Property.CHARGES: ["charges"], Property.QUADRUPOLE: ["quadrupole"],
                 Property.POLARIZABILITY: ["polarizability"]}
        self.implemented_properties = [name for prop, props in names.items() if prop in targets for name in props]
        # on a GPU each call replays a recorded CUDA graph (one per padded size): one launch instead of hundreds
        on_gpu = next(self.model.parameters()).is_cuda
        self.graphs = GraphedInference(self.model, structures=1) if on_gpu and not compile and not self.committee else False

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        stress = "stress" in properties
        if stress and not self.atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a cell periodic in all three directions")
        out = predict(self.model, [self.atoms], batch_size=1, runner=None if stress else self.runner,
                      graphs=False if stress else self.graphs, stress=stress)
        if "energy" in out:
            self.results["energy"] = self.results["free_energy"] = float(out["energy"][0])
            self.results["forces"] = out["forces"][0].astype(float)
        if "dipole" in out and not self.atoms.pbc.any():  # not defined for a cell: get_dipole_moment raises
            self.results["dipole"] = out["dipole"][0].astype(float)
        if "charges" in out:
            self.results["charges"] = out["charges"][0].astype(float)
        for key in ("quadrupole", "polarizability"):  # [3, 3]; open structures, as the dipole
            if key in out and not self.atoms.pbc.any():
                self.results[key] = out[key][0].astype(float)
        if "stress" in out:  # ASE's Voigt order xx, yy, zz, yz, xz, xy
            self.results["stress"] = full_3x3_to_voigt_6_stress(out["stress"][0].astype(float))
        for key in ("energy_std", "forces_std"):
            if key in out:
                self.results[key] = np.asarray(out[key][0], dtype=float) if key == "forces_std" else float(out[key][0])
        self._warn_if_uncertain()

    def _warn_if_uncertain(self) -> None:
        if self.forces_std_warning is None or self.warned or "forces_std" not in self.results:
            return
        worst = float(self.results["forces_std"].max(initial=0.0))
        if worst > self.forces_std_warning:
            self.warned = True
            warnings.warn(f"committee force spread {worst:.3f} eV/A exceeds forces_std_warning={self.forces_std_warning} "
                          "eV/A: this structure is outside what the committee agrees on (warned once)", stacklevel=3)
