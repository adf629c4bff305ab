"""ASE calculator for trained equiprop models."""

from ase.calculators.calculator import Calculator, all_changes

from equiprop.keys import Property
from equiprop.models.graphed import GraphedInference
from equiprop.models.predict import predict
from equiprop.train.checkpoint import load_model
from equiprop.train.compiled import compiled_inference


class EquipropCalculator(Calculator):
    """Energy, forces, dipole and charges from a checkpoint (or a model) for ASE.

    Args:
        model: path of a checkpoint (``best.pt``) or a model instance.
        device: where to run; a model trained on GPU runs on CPU too.
        compile: evaluate through ``torch.compile`` (:func:`equiprop.train.compiled.compiled_inference`):
            compiled at the first call (up to a minute on a CPU; seconds from the disk
            cache), then one water cluster per call 3.6x faster on the project's 2-core CPU
            (docs/performance.md, step 25). For molecular dynamics.

    Provides what the model was trained for: ``get_potential_energy``,
    ``get_forces`` (energy models), ``get_dipole_moment``, ``get_charges``.
    """

    def __init__(self, model, device: str = "cpu", compile: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.model = load_model(model, device) if not hasattr(model, "predict") else model.to(device).eval()
        self.runner = compiled_inference(self.model) if compile else None
        targets = self.model.targets
        names = {Property.ENERGY: ["energy", "free_energy", "forces"], Property.DIPOLE: ["dipole"], Property.CHARGES: ["charges"]}
        self.implemented_properties = [name for prop, props in names.items() if prop in targets for name in props]
        # on a GPU each call replays a recorded CUDA graph (one per padded size): one launch instead of hundreds
        self.graphs = GraphedInference(self.model, structures=1) if next(self.model.parameters()).is_cuda and not compile else False

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        out = predict(self.model, [self.atoms], batch_size=1, runner=self.runner, graphs=self.graphs)
        if "energy" in out:
            self.results["energy"] = self.results["free_energy"] = float(out["energy"][0])
            self.results["forces"] = out["forces"][0].astype(float)
        if "dipole" in out:
            self.results["dipole"] = out["dipole"][0].astype(float)
        if "charges" in out:
            self.results["charges"] = out["charges"][0].astype(float)
