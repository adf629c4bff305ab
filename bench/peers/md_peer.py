"""ASE velocity-Verlet MD with a peer model (MACE or schnetpack PaiNN, random weights), timed on request.

Runs in the peer's venv (bench/.venvs/mace or bench/.venvs/schnetpack, see setup_peers.sh), started by
bench/md_speed.py::

    bench/.venvs/mace/bin/python bench/peers/md_peer.py mace STRUCTURES.extxyz [--threads 2] [--device cpu]

Models of about equiprop's size, with random weights (enough for speed; forces are checked to be nonzero
and finite at the start):

- ``mace``: mace-torch's ``MACE`` (hidden irreps 32x0e+32x1o, 2 interactions, cutoff 4 A, max_ell 3,
  correlation 3, 8 Bessel functions, radial MLP [64, 64, 64], E0s zero) driven by mace's own
  ``MACECalculator``;
- ``painn``: schnetpack's ``PaiNN`` (32 features, 3 interactions, 20 Gaussians, cosine cutoff 4 A) with an
  ``Atomwise`` energy and ``Forces``, driven by schnetpack's own ``SpkCalculator`` (neighbour list by
  ``MatScipyNeighborList``, rebuilt every step).

Protocol, on stdout (everything else, the libraries' own prints included, goes to stderr): one JSON line
once the model is built (``{"ready": ..., "parameters": n, "rms_force": [...]}``, one RMS force in eV/A per
structure), then for each stdin line ``INDEX STEPS`` one JSON line ``{"steps_per_s": x}`` (or
``{"error": "..."}``), so that the caller can interleave its rounds with other ways of running MD.
Only numpy is imported at module level (ASE inside the functions): bench/md_speed.py imports
:func:`steps_per_second` from here, so every ASE row is timed by the same code.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
import typing

import numpy as np

CUTOFF = 4.0


def steps_per_second(atoms, calculator, steps: int) -> float:
    """Velocity-Verlet steps (0.5 fs) per second from 300 K velocities; every step is a new call."""
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet
    from ase.units import fs

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


def average_neighbors(structures) -> float:
    """Mean number of neighbours within the cutoff (MACE's avg_num_neighbors normalisation)."""
    from ase.neighborlist import neighbor_list

    counts = [len(neighbor_list("i", atoms, CUTOFF)) / len(atoms) for atoms in structures]
    return float(np.mean(counts))


def mace_calculator(structures, device: str, workdir: str):  # noqa: ARG001 (workdir: PaiNN's)
    import torch
    from e3nn import o3
    from mace import modules
    from mace.calculators import MACECalculator

    torch.manual_seed(0)
    model = modules.MACE(
        r_max=CUTOFF, num_bessel=8, num_polynomial_cutoff=5, max_ell=3,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=2, num_elements=2, hidden_irreps=o3.Irreps("32x0e+32x1o"), MLP_irreps=o3.Irreps("16x0e"),
        atomic_energies=np.zeros(2), avg_num_neighbors=average_neighbors(structures), atomic_numbers=[1, 8],
        correlation=3, gate=modules.gate_dict["silu"], radial_MLP=[64, 64, 64],
    )
    return MACECalculator(models=model, device=device, default_dtype="float32"), model


def import_schnetpack():
    """schnetpack 2.1.1 imports ``T_co`` from torch's dataloader, gone in torch 2.13 (see run_schnetpack.py)."""
    import torch.utils.data.dataloader as dl

    if not hasattr(dl, "T_co"):
        dl.T_co = typing.TypeVar("T_co", covariant=True)
    import schnetpack

    return schnetpack


def painn_calculator(structures, device: str, workdir: str):
    import torch

    spk = import_schnetpack()
    from schnetpack.interfaces import SpkCalculator
    from schnetpack.transform import MatScipyNeighborList

    torch.manual_seed(0)
    representation = spk.representation.PaiNN(
        n_atom_basis=32, n_interactions=3, radial_basis=spk.nn.GaussianRBF(n_rbf=20, cutoff=CUTOFF),
        cutoff_fn=spk.nn.CosineCutoff(CUTOFF))
    model = spk.model.NeuralNetworkPotential(
        representation=representation, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=32, output_key="energy"),
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")])
    path = os.path.join(workdir, "painn.model")
    torch.save(model, path)  # SpkCalculator loads a whole pickled model, as schnetpack's trainer writes it
    calculator = SpkCalculator(path, neighbor_list=MatScipyNeighborList(cutoff=CUTOFF), energy_unit="eV",
                               position_unit="Angstrom", device=device, dtype=torch.float32)
    return calculator, model


BUILDERS = {"mace": mace_calculator, "painn": painn_calculator}


def rms_force(atoms, calculator) -> float:
    atoms = atoms.copy()
    atoms.calc = calculator
    forces = atoms.get_forces()
    rms = float(np.sqrt(np.mean(forces ** 2)))
    if not (np.isfinite(forces).all() and rms > 0):
        raise RuntimeError(f"forces at the start are not finite and nonzero (RMS {rms})")
    return rms


def serve(calculator, structures, out) -> None:
    """Answer ``INDEX STEPS`` lines from stdin with ``{"steps_per_s": ...}`` on ``out``, until stdin closes."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            index, steps = (int(word) for word in line.split())
            reply = {"steps_per_s": steps_per_second(structures[index], calculator, steps)}
        except Exception as error:  # the caller prints the reason in its row
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), file=out, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library", choices=sorted(BUILDERS))
    parser.add_argument("structures", help="extxyz file; INDEX on stdin picks a frame")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # both calculators torch.load pickled models
    out, sys.stdout = sys.stdout, sys.stderr  # the libraries' own prints (mace: "cuequivariance ...") go to stderr
    import ase.io
    import torch

    torch.set_num_threads(args.threads)
    structures = ase.io.read(args.structures, index=":")
    try:
        with tempfile.TemporaryDirectory() as workdir:
            calculator, model = BUILDERS[args.library](structures, args.device, workdir)
        info = {"ready": args.library, "parameters": sum(p.numel() for p in model.parameters()),
                "rms_force": [rms_force(atoms, calculator) for atoms in structures]}
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), file=out, flush=True)
        return
    print(json.dumps(info), file=out, flush=True)
    serve(calculator, structures, out)


if __name__ == "__main__":
    main()
