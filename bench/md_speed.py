"""Molecular dynamics with the ASE calculator: steps per second, each way of evaluating side by side.

``python bench/md_speed.py [--checkpoint best.pt] [--device cuda] [--steps 200] [--rounds 3]``

A trained checkpoint, or else SO3Net (lmax 2, 32 features, 3 interactions, cutoff
4 A; energy, forces, dipole, charges) with random weights in its heads too (an
untrained energy head gives exactly zero forces, so the atoms would fly freely
and every step would see the same neighbours) drives velocity-Verlet steps of the first shipped
water cluster and of a 192-atom periodic water box: one structure per call, as
in a simulation. The ways of evaluating (on a GPU: eager and CUDA graphs; on a
CPU: eager and ``torch.compile``) alternate for ``--rounds`` rounds in one
process, each after an untimed warm-up that records or compiles; the median of
the rounds is printed, with the ratio to eager. Timings are printed, not asserted.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.units import fs

sys.path.insert(0, str(Path(__file__).resolve().parent))
import equiprop  # noqa: E402
from equiprop import datasets  # noqa: E402
from equiprop.calculator import EquipropCalculator  # noqa: E402
from scaling import water_box  # noqa: E402


def calculators(model, device: str) -> dict[str, EquipropCalculator]:
    """Eager, and the device's faster way: CUDA graphs (the default on a GPU) or torch.compile (on a CPU)."""
    eager = EquipropCalculator(model, device=device)
    eager.graphs = False
    fast = ("CUDA graphs", EquipropCalculator(model, device=device)) if device.startswith("cuda") else \
        ("torch.compile", EquipropCalculator(model, device=device, compile=True))
    return {"eager": eager, fast[0]: fast[1]}


def steps_per_second(atoms, calculator, steps: int) -> float:
    """Velocity-Verlet steps per second from 300 K velocities (the atoms move, so every step is a new call)."""
    atoms = atoms.copy()
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    atoms.calc = calculator
    calls, calculate = [0], calculator.calculate

    def counted(*args, **kwargs):
        calls[0] += 1
        return calculate(*args, **kwargs)

    calculator.calculate = counted
    dynamics = VelocityVerlet(atoms, 0.5 * fs)
    start = time.perf_counter()
    dynamics.run(steps)
    seconds = time.perf_counter() - start
    del calculator.calculate
    assert calls[0] >= steps, "the calculator was not called at every step"
    assert np.isfinite(atoms.positions).all(), "the trajectory blew up"
    return steps / seconds


def random_model(device: str) -> equiprop.SO3Net:
    """SO3Net whose heads are random too, scaled so that water's forces are of order 1 eV/A."""
    torch.manual_seed(0)
    model = equiprop.SO3Net(elements=["H", "O"], cutoff=4.0, lmax=2, features=32, interactions=3,
                            targets=["charges", "dipole", "energy", "forces"])
    with torch.no_grad():
        for head in (model.charge_head, model.energy_head):
            torch.nn.init.normal_(head.net[-1].weight, std=0.5)
    return model.to(device).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", help="a trained model (default: random weights, heads included)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=200, help="MD steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = equiprop.load_model(args.checkpoint, args.device) if args.checkpoint else random_model(args.device)
    systems = {"water cluster": datasets.water_pbe0()[0], "periodic water box": water_box(1)}
    for name, atoms in systems.items():
        forces = model.predict([atoms])["forces"][0]
        print(f"{name}: RMS force {np.sqrt(np.mean(forces ** 2)):.2f} eV/A at the start", flush=True)
    ways = calculators(model, args.device)
    for name, atoms in systems.items():
        for calculator in ways.values():  # warm-up: records the graphs or compiles, untimed
            steps_per_second(atoms, calculator, 3)
        rates = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way, calculator in ways.items():
                rates[way].append(steps_per_second(atoms, calculator, args.steps))
        eager = statistics.median(rates["eager"])
        for way, values in rates.items():
            rate = statistics.median(values)
            print(f"{name} ({len(atoms)} atoms), {args.device}, {way}: {rate:.0f} steps/s "
                  f"({rate / eager:.2f}x eager; rounds {', '.join(f'{v:.0f}' for v in values)})", flush=True)


if __name__ == "__main__":
    main()
