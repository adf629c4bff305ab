"""OpenMM runs an equiprop model through openmm-ml: the same energy and forces as the ASE calculator."""

import numpy as np
import pytest

import equiprop
from conftest import periodic_water, water_cluster

openmm = pytest.importorskip("openmm")
pytest.importorskip("openmmml")
from openmm import app, unit  # noqa: E402
from openmmml import MLPotential  # noqa: E402

KJ_PER_MOL_PER_EV = 96.48533212331002


def _topology(atoms):
    topology = app.Topology()
    chain = topology.addChain()
    for start in range(0, len(atoms), 3):
        residue = topology.addResidue("HOH", chain)
        for symbol in atoms.get_chemical_symbols()[start:start + 3]:
            topology.addAtom(symbol, app.Element.getBySymbol(symbol), residue)
    if atoms.pbc.all():
        topology.setPeriodicBoxVectors(atoms.cell.array * 0.1 * unit.nanometer)
    return topology


def _context(checkpoint, atoms, integrator):
    system = MLPotential("equiprop", checkpoint=checkpoint).createSystem(_topology(atoms))
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    if atoms.pbc.all():
        context.setPeriodicBoxVectors(*(atoms.cell.array * 0.1 * unit.nanometer))
    return context


@pytest.mark.parametrize("kind", ["open", "periodic"])
def test_openmm_energy_and_forces_are_the_calculators(run_dir, kind):
    checkpoint = str(run_dir / "best.pt")
    atoms = water_cluster(4, seed=3) if kind == "open" else periodic_water(seed=4)
    if kind == "periodic":  # OpenMM's reduced form: a along x, b in the xy plane (triclinic, as OpenMM allows)
        atoms.set_cell([[6.2, 0.0, 0.0], [0.3, 6.3, 0.0], [-0.2, 0.4, 6.1]])
    context = _context(checkpoint, atoms, openmm.VerletIntegrator(0.5 * unit.femtosecond))
    context.setPositions(atoms.positions * unit.angstrom)
    state = context.getState(getEnergy=True, getForces=True)
    atoms.calc = equiprop.EquipropCalculator(checkpoint)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    assert energy == pytest.approx(atoms.get_potential_energy() * KJ_PER_MOL_PER_EV, rel=1e-7)
    np.testing.assert_allclose(forces, atoms.get_forces() * KJ_PER_MOL_PER_EV * 10.0, rtol=1e-5, atol=1e-3)


def test_openmm_langevin_and_rpmd_move_the_atoms_on_the_models_surface(run_dir):
    checkpoint = str(run_dir / "best.pt")
    atoms = water_cluster(3, seed=5)
    context = _context(checkpoint, atoms, openmm.LangevinMiddleIntegrator(300, 1.0, 0.0005))
    context.setPositions(atoms.positions * unit.angstrom)
    context.setVelocitiesToTemperature(300)
    context.getIntegrator().step(10)
    state = context.getState(getPositions=True, getEnergy=True)
    moved = state.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    assert np.abs(moved - atoms.positions).max() > 1e-4
    probe = atoms.copy()
    probe.positions = moved
    probe.calc = equiprop.EquipropCalculator(checkpoint)
    assert state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
        probe.get_potential_energy() * KJ_PER_MOL_PER_EV, rel=1e-7)

    rpmd = openmm.RPMDIntegrator(4, 300, 1.0, 0.00025)
    context = _context(checkpoint, atoms, rpmd)
    context.setPositions(atoms.positions * unit.angstrom)
    context.setVelocitiesToTemperature(300)
    for bead in range(4):
        rpmd.setPositions(bead, atoms.positions * unit.angstrom)
    rpmd.step(5)
    bead = rpmd.getState(2, getPositions=True, getEnergy=True)
    probe.positions = bead.getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    assert bead.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) == pytest.approx(
        probe.get_potential_energy() * KJ_PER_MOL_PER_EV, rel=1e-7)


def test_openmm_potential_needs_a_checkpoint():
    with pytest.raises(ValueError, match="needs a checkpoint"):
        MLPotential("equiprop")
    with pytest.raises(ValueError, match="unknown arguments"):
        MLPotential("equiprop", checkpoint="x.pt", cutoff=3.0)
