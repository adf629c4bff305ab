"""An equiprop model as an OpenMM force, through openmm-ml.

Registered with openmm-ml by the entry point ``openmmml.potentials: equiprop``
(``pyproject.toml``), so once equiprop is installed::

    from openmmml import MLPotential
    system = MLPotential("equiprop", checkpoint="runs/demo/best.pt").createSystem(topology)

The force is an ``openmm.PythonForce`` that calls the ASE calculator
(:class:`equiprop.calculator.EquipropCalculator`) each step: energy in kJ/mol,
forces in kJ/mol/nm; periodic when the topology has box vectors. It works with
every integrator, ``RPMDIntegrator`` (ring-polymer MD, each bead one call)
included, and on every platform (the model itself runs where ``device`` says).
``createMixedSystem`` (ML/MM embedding) is not supported.

Imported by openmm-ml whenever it loads, so nothing heavy is imported here at
module level.
"""

from openmmml.mlpotential import MLPotentialImpl, MLPotentialImplFactory

#: kJ/mol per eV (CODATA 2018, as ase.units).
KJ_PER_MOL_PER_EV = 96.48533212331002


class EquipropPotentialImplFactory(MLPotentialImplFactory):
    """``MLPotential("equiprop", checkpoint=..., device="cpu", compile=False)``."""

    def createImpl(self, name: str, checkpoint: str | None = None, device: str = "cpu", compile: bool = False,
                   **args) -> "EquipropPotentialImpl":
        if checkpoint is None:
            raise ValueError('MLPotential("equiprop") needs a checkpoint: MLPotential("equiprop", checkpoint="RUN/best.pt")')
        if args:
            raise ValueError(f"MLPotential('equiprop'): unknown arguments {sorted(args)}; known: checkpoint, device, compile")
        return EquipropPotentialImpl(checkpoint, device, compile)


class EquipropPotentialImpl(MLPotentialImpl):
    """Adds one ``PythonForce`` evaluating the checkpoint on the given atoms (all when ``atoms`` is None)."""

    def __init__(self, checkpoint: str, device: str = "cpu", compile: bool = False):
        self.checkpoint, self.device, self.compile = checkpoint, device, compile

    def addForces(self, topology, system, atoms, forceGroup, **args):
        import numpy as np
        import openmm
        from ase import Atoms
        from openmm import unit

        from equiprop.calculator import EquipropCalculator

        if args:
            raise ValueError(f"createSystem: arguments {sorted(args)} are not used by the equiprop potential")
        everything = list(topology.atoms())
        indices = np.arange(len(everything)) if atoms is None else np.asarray(list(atoms), dtype=int)
        symbols = [everything[k].element.symbol for k in indices]
        periodic = topology.getPeriodicBoxVectors() is not None
        calculator = EquipropCalculator(self.checkpoint, device=self.device, compile=self.compile)
        if "energy" not in calculator.implemented_properties:
            raise ValueError(f"{self.checkpoint}: the model predicts no energy, so it cannot give OpenMM a force")
        structure = Atoms(symbols, pbc=periodic)
        n_particles = system.getNumParticles()

        def compute(state):
            positions = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
            structure.positions = positions[indices]
            if periodic:
                structure.cell = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.angstrom)
            calculator.calculate(structure, ["energy", "forces"])
            forces = np.zeros((n_particles, 3))
            forces[indices] = calculator.results["forces"] * (KJ_PER_MOL_PER_EV * 10.0)  # eV/A -> kJ/mol/nm
            return calculator.results["energy"] * KJ_PER_MOL_PER_EV, forces

        force = openmm.PythonForce(compute)
        force.setForceGroup(forceGroup)
        force.setUsesPeriodicBoundaryConditions(periodic)
        force.setName("equiprop")
        system.addForce(force)
