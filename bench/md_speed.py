"""Molecular dynamics steps per second: one equiprop model in every engine it ships for, and two peers, side by side.

``python bench/md_speed.py [--checkpoint best.pt] [--ways ase,ipi,openmm,metatomic,mace,painn] [--compile]
[--device cpu] [--steps 200] [--rounds 3] [--threads 2]``

Model: a trained ``--checkpoint``, or else SO3Net (lmax 2, 32 features, 3 interactions, cutoff 4 A; energy,
forces, dipole, charges) with random weights in its heads too (an untrained energy head gives exactly zero
forces, so the atoms would fly freely and every step would see the same neighbours). The engines that load
a file (i-PI's client, OpenMM, metatomic) get that random model written with equiprop's own
``save_checkpoint`` into a temporary folder, so every row runs the same weights with or without a checkpoint.

Systems: a water hexamer (``equiprop.datasets.water_pbe0_sampled()[108]``, open; in a 20 A box that only
i-PI sees) and a 192-atom periodic water box (``water_box(1)`` of bench/scaling.py). One structure per
call, as in a simulation; 300 K starting velocities, 0.5 fs steps, no thermostat.

Ways (rows), chosen by ``--ways``:

- ``ase``: ASE velocity Verlet with ``EquipropCalculator`` (eager). The ratio column divides by this row.
- ``compile`` (``--compile`` adds it; it takes minutes to compile): the same with ``torch.compile``, or on a
  GPU with CUDA graphs (``graphs`` is added by default there).
- ``ipi``: i-PI NVE (one bead) with one ``equiprop ipi`` socket client (UNIX socket). Timed by i-PI's own
  per-step wall clock (``verbosity='high'`` prints ``t/step`` for every step: integrator, socket round trip,
  the client's model call, outputs); the first ``IPI_SKIP`` steps of each run are dropped and steps/s is the
  count over the sum of the rest, so i-PI's start-up and the client's model loading are not counted. Each
  round is a fresh i-PI and client. The client also computes the virial of the periodic box at every step
  (the driver always does for a cell), which the other equiprop rows do not.
- ``openmm``: OpenMM through openmm-ml, ``MLPotential("equiprop", checkpoint=...)``, ``VerletIntegrator``
  on the Reference platform (box vectors from the topology for the periodic box), timed around
  ``integrator.step``.
- ``metatomic``: the model exported by ``equiprop.engines.metatomic.export`` (TorchScript), ASE velocity
  Verlet with ``metatomic_ase.MetatomicCalculator`` (its defaults: a Verlet neighbour list with a 2 A skin,
  rebuilt only when an atom moved more than 1 A; the stress with the forces for the periodic box).
- ``mace``, ``painn``: peers with random weights and about equiprop's size, ASE velocity Verlet with their
  own calculators (MACE 32x0e+32x1o, 2 interactions, cutoff 4 A; schnetpack PaiNN 32 features, 3
  interactions, cutoff 4 A), each in its own venv (``bash bench/peers/setup_peers.sh``) as a long-lived
  subprocess (bench/peers/md_peer.py) that times a round whenever asked. A peer that cannot start has its
  reason printed in its row.

The ASE rows (and the peers') share one timing function (``md_peer.steps_per_second``). Every way gets an
untimed warm-up (3 steps; for i-PI, the skipped steps), then the ways alternate for ``--rounds`` rounds of
``--steps`` steps; the median of the rounds is printed with its ratio to the ASE eager row. Timings are
printed, not asserted.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import ase.io
import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
import equiprop  # noqa: E402
from equiprop.calculator import EquipropCalculator  # noqa: E402
from md_peer import steps_per_second  # noqa: E402
from scaling import water_box  # noqa: E402

WAYS = ("ase", "compile", "graphs", "ipi", "openmm", "metatomic", "mace", "painn")
LABELS = {"ase": "ASE + EquipropCalculator, eager", "compile": "ASE + EquipropCalculator, torch.compile",
          "graphs": "ASE + EquipropCalculator, CUDA graphs", "ipi": "i-PI NVE, 1 socket client",
          "openmm": "OpenMM (openmm-ml, Reference platform)", "metatomic": "metatomic-ase (TorchScript export)",
          "mace": "MACE (mace-torch), ASE", "painn": "PaiNN (schnetpack), ASE"}
PEER_VENVS = {"mace": "mace", "painn": "schnetpack"}
WARMUP = 3
IPI_SKIP = 3
IPI_INPUT = """<simulation verbosity='high'>
  <output prefix='md'><properties stride='{steps}' filename='out'> [ step, conserved{{electronvolt}},
    temperature{{kelvin}} ] </properties></output>
  <total_steps>{steps}</total_steps>
  <prng><seed>31415</seed></prng>
  <ffsocket name='equiprop' mode='unix' pbc='{pbc}'><address>{address}</address></ffsocket>
  <system>
    <initialize nbeads='1'><file mode='ase'>{structure}</file>
      <velocities mode='thermal' units='kelvin'>300</velocities></initialize>
    <forces><force forcefield='equiprop'/></forces>
    <motion mode='dynamics'><dynamics mode='nve'><timestep units='femtosecond'>0.5</timestep></dynamics></motion>
    <ensemble><temperature units='kelvin'>300</temperature></ensemble>
  </system>
</simulation>
"""
IPI_STEP = re.compile(r"Average timings at MD step\s+(\d+)\. t/step:\s+(\S+)")


@dataclass
class Run:
    """What the ways share: flags, the model and its checkpoint file, a scratch folder, started peers."""

    args: argparse.Namespace
    model: torch.nn.Module
    checkpoint: Path
    workdir: Path
    structures: Path  # every system, one extxyz frame each, for the peers
    peers: dict = field(default_factory=dict)
    exported: Path | None = None


def systems() -> dict:
    hexamer = equiprop.datasets.water_pbe0_sampled()[108].copy()
    hexamer.cell, hexamer.pbc = [20.0] * 3, False  # a box only i-PI uses (as docs/examples/ipi/hexamer.xyz)
    hexamer.center()
    return {"water hexamer": hexamer, "periodic water box": water_box(1)}


def random_model(device: str) -> equiprop.SO3Net:
    """SO3Net whose heads are random too, scaled so that water's forces are of order 1 eV/A."""
    torch.manual_seed(0)
    model = equiprop.SO3Net(elements=["H", "O"], cutoff=4.0, lmax=2, features=32, interactions=3,
                            targets=["charges", "dipole", "energy", "forces"])
    with torch.no_grad():
        for head in (model.charge_head, model.energy_head):
            torch.nn.init.normal_(head.net[-1].weight, std=0.5)
    return model.to(device).eval()


def model_and_checkpoint(args, workdir: Path) -> tuple[torch.nn.Module, Path]:
    """The ``--checkpoint`` model, or the random one saved as a checkpoint for the engines that load a file."""
    if args.checkpoint:
        return equiprop.load_model(args.checkpoint, args.device), Path(args.checkpoint).resolve()
    from equiprop.models.checkpoint import save_checkpoint

    model, path = random_model(args.device), workdir / "random" / "best.pt"
    path.parent.mkdir()
    save_checkpoint(path, model, {}, {})
    return model, path


def thread_env(threads: int) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


# ----------------------------------------------------------------------------- ways: each returns run(steps) -> steps/s


def ase_way(run: Run, index: int, atoms, kind: str = "eager"):
    if kind == "compile":
        calculator = EquipropCalculator(run.model, device=run.args.device, compile=True)
    else:
        calculator = EquipropCalculator(run.model, device=run.args.device)
        calculator.graphs = kind == "graphs"
    steps_per_second(atoms, calculator, WARMUP)  # records the graphs or compiles, untimed
    return lambda steps: steps_per_second(atoms, calculator, steps)


def ipi_way(run: Run, index: int, atoms):
    structure = run.workdir / f"system{index}.xyz"
    ase.io.write(structure, atoms, format="extxyz")
    return lambda steps: ipi_round(run, structure, bool(atoms.pbc.all()), steps)


def ipi_round(run: Run, structure: Path, periodic: bool, steps: int) -> float:
    """One fresh i-PI (NVE, ``IPI_SKIP + steps`` steps) and client; steps/s from i-PI's per-step wall clock."""
    folder = Path(tempfile.mkdtemp(dir=run.workdir))
    address = f"mdspeed-{uuid.uuid4().hex[:8]}"
    (folder / "input.xml").write_text(IPI_INPUT.format(steps=IPI_SKIP + steps, pbc=str(periodic).lower(),
                                                       address=address, structure=structure))
    client = subprocess.Popen([sys.executable, "-m", "equiprop", "ipi", str(run.checkpoint), "--template",
                               str(structure), "--address", address, "--device", run.args.device, "--wait", "120"],
                              cwd=folder, env=thread_env(run.args.threads), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        first = client.stdout.readline()
        if "waiting for i-PI" not in first:
            raise RuntimeError(f"client: {(first + client.communicate(timeout=30)[0]).strip()[-300:]}")
        server = subprocess.run([str(Path(sys.executable).with_name("i-pi")), "input.xml"], cwd=folder,
                                env=thread_env(1), capture_output=True, text=True, timeout=300 + 10 * steps)
        client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
    if server.returncode != 0:
        raise RuntimeError(f"i-pi exited {server.returncode}: {(server.stdout + server.stderr).strip()[-300:]}")
    times = [float(t) for step, t in IPI_STEP.findall(server.stdout) if int(step) >= IPI_SKIP]
    if len(times) != steps:
        raise RuntimeError(f"i-PI reported {len(times)} step times, expected {steps}")
    return len(times) / sum(times)


def openmm_way(run: Run, index: int, atoms):
    import openmm
    from openmm import app, unit
    from openmmml import MLPotential

    topology = app.Topology()
    chain = topology.addChain()
    for start in range(0, len(atoms), 3):  # waters, O H H
        residue = topology.addResidue("HOH", chain)
        for symbol in atoms.get_chemical_symbols()[start:start + 3]:
            topology.addAtom(symbol, app.Element.getBySymbol(symbol), residue)
    periodic = bool(atoms.pbc.all())
    if periodic:
        topology.setPeriodicBoxVectors(atoms.cell.array * 0.1 * unit.nanometer)
    system = MLPotential("equiprop", checkpoint=str(run.checkpoint), device=run.args.device).createSystem(topology)
    integrator = openmm.VerletIntegrator(0.5 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    if periodic:
        context.setPeriodicBoxVectors(*(atoms.cell.array * 0.1 * unit.nanometer))

    def rate(steps: int) -> float:
        context.setPositions(atoms.positions * unit.angstrom)
        context.setVelocitiesToTemperature(300 * unit.kelvin, 1)
        start = time.perf_counter()
        integrator.step(steps)
        seconds = time.perf_counter() - start
        positions = context.getState(getPositions=True).getPositions(asNumpy=True)
        assert np.isfinite(positions.value_in_unit(unit.angstrom)).all(), "the trajectory blew up"
        return steps / seconds

    rate(WARMUP)
    return rate


def metatomic_way(run: Run, index: int, atoms):
    from metatomic_ase import MetatomicCalculator

    from equiprop.engines.metatomic import export

    if run.exported is None:
        run.exported = export(str(run.checkpoint), run.workdir / "model.pt")  # traced on the CPU
    calculator = MetatomicCalculator(str(run.exported), device=run.args.device)
    steps_per_second(atoms, calculator, WARMUP)
    return lambda steps: steps_per_second(atoms, calculator, steps)


def peer_way(run: Run, index: int, atoms, library: str):
    if library not in run.peers:
        run.peers[library] = Peer(library, run)
    peer = run.peers[library]
    if "error" in peer.info:
        raise RuntimeError(peer.info["error"])
    peer.rate(index, WARMUP)
    return lambda steps: peer.rate(index, steps)


class Peer:
    """A peer's md_peer.py in its own venv: ``rate(index, steps)`` asks it to time one round."""

    def __init__(self, library: str, run: Run):
        python = HERE / ".venvs" / PEER_VENVS[library] / "bin" / "python"
        if not python.is_file():
            self.process, self.info = None, {"error": f"{python.parent.parent} is missing "
                                                      "(bash bench/peers/setup_peers.sh)"}
            return
        self.log = open(run.workdir / f"{library}.log", "w")
        self.process = subprocess.Popen(
            [str(python), str(HERE / "peers" / "md_peer.py"), library, str(run.structures), "--threads",
             str(run.args.threads), "--device", run.args.device], env=thread_env(run.args.threads),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.info = self.reply()
        if "error" not in self.info:
            print(f"{library}: {self.info['parameters']} parameters, RMS force at the start "
                  f"{', '.join(f'{f:.3g}' for f in self.info['rms_force'])} eV/A", flush=True)

    def reply(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.log.flush()
            tail = Path(self.log.name).read_text().strip().splitlines()[-1:]
            return {"error": f"exited {self.process.wait()}: {' '.join(tail)[-300:]}"}
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            return {"error": f"not a JSON reply: {line.strip()[:300]}"}

    def rate(self, index: int, steps: int) -> float:
        self.process.stdin.write(f"{index} {steps}\n")
        self.process.stdin.flush()
        answer = self.reply()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["steps_per_s"]

    def close(self) -> None:
        if self.process is not None:
            self.process.stdin.close()
            self.process.wait(timeout=60)
            self.log.close()


def make_way(way: str, run: Run, index: int, atoms):
    if way in ("ase", "compile", "graphs"):
        return ase_way(run, index, atoms, "eager" if way == "ase" else way)
    if way in PEER_VENVS:
        return peer_way(run, index, atoms, way)
    return {"ipi": ipi_way, "openmm": openmm_way, "metatomic": metatomic_way}[way](run, index, atoms)


# ----------------------------------------------------------------------------- the measurement


def reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]


def measure(run: Run, ways: list[str], index: int, atoms) -> tuple[dict, dict]:
    """Warm every way up, then alternate them for ``--rounds`` rounds: (rates per way, failure per way)."""
    runners, failed = {}, {}
    for way in ways:
        try:
            runners[way] = make_way(way, run, index, atoms)
        except Exception as error:
            failed[way] = reason(error)
    rates = {way: [] for way in runners}
    for _ in range(run.args.rounds):
        for way in [w for w in runners if w not in failed]:
            try:
                rates[way].append(runners[way](run.args.steps))
            except Exception as error:
                failed[way] = reason(error)
    return {w: r for w, r in rates.items() if w not in failed}, failed


def report(name: str, atoms, ways: list[str], rates: dict, failed: dict) -> None:
    eager = statistics.median(rates["ase"]) if rates.get("ase") else None
    for way in ways:
        head = f"{name} ({len(atoms)} atoms), {LABELS[way]}:"
        if way in failed:
            print(f"{head} unavailable: {failed[way]}", flush=True)
            continue
        rate = statistics.median(rates[way])
        ratio = f"{rate / eager:.2f}x ASE eager; " if eager else ""
        print(f"{head} {rate:.1f} steps/s ({ratio}rounds {', '.join(f'{v:.1f}' for v in rates[way])})", flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a trained energy model (default: random weights, heads included)")
    parser.add_argument("--ways", default="ase,ipi,openmm,metatomic,mace,painn",
                        help=f"comma-separated rows, of: {','.join(WAYS)}")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile row (minutes to compile)")
    parser.add_argument("--device", default="cpu", help="where the models run (OpenMM itself: Reference platform)")
    parser.add_argument("--steps", type=int, default=200, help="MD steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch threads here, in the i-PI client and peers")
    args = parser.parse_args()
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    extra = (["compile"] if args.compile else []) + (["graphs"] if args.device.startswith("cuda") else [])
    at = ways.index("ase") + 1 if "ase" in ways else 0
    ways[at:at] = [w for w in extra if w not in ways]
    unknown = sorted(set(ways) - set(WAYS))
    if unknown:
        parser.error(f"--ways: unknown {','.join(unknown)}; choose from {','.join(WAYS)}")
    return args, ways


def main() -> None:
    args, ways = parse_args()
    torch.set_num_threads(args.threads)
    structures = systems()
    with tempfile.TemporaryDirectory(prefix="md_speed-") as scratch:
        workdir = Path(scratch)
        model, checkpoint = model_and_checkpoint(args, workdir)
        ase.io.write(workdir / "systems.xyz", list(structures.values()), format="extxyz")
        run = Run(args, model, checkpoint, workdir, workdir / "systems.xyz")
        print(f"model: {checkpoint if args.checkpoint else 'random SO3Net'} "
              f"({sum(p.numel() for p in model.parameters())} parameters); ways: {','.join(ways)}", flush=True)
        for name, atoms in structures.items():
            forces = model.predict([atoms])["forces"][0]
            print(f"{name}: RMS force {np.sqrt(np.mean(forces ** 2)):.3g} eV/A at the start", flush=True)
        try:
            for index, (name, atoms) in enumerate(structures.items()):
                report(name, atoms, ways, *measure(run, ways, index, atoms))
        finally:
            for peer in run.peers.values():
                peer.close()


if __name__ == "__main__":
    main()
