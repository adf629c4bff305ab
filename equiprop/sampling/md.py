"""Langevin NVT molecular dynamics of many clusters at once, with ASE and an equiprop calculator.

Replicas: the clusters are placed side by side, ``spacing`` Angstrom apart (far
beyond the model's cutoff, so its local terms do not couple them), in one
``ase.Atoms`` that ASE's ``Langevin`` integrates; the system's total charge
(``info["charge"]``) is the sum of the replicas'. Only a model's electrostatics
reaches across: at 100 A two water dipoles interact by about 1e-4 meV and two
ions by 0.14 eV with a force of 1.4 meV/A (2.4 at the end of a row of eight), a
thousandth of the thermal forces. With the formal charge spread each replica
keeps its own total charge exactly (it has no edge to the others); the uniform
spread would share one replica's excess with all of them.
One model call then serves every trajectory, which on a CPU is several times
faster than one call per cluster. The thermostat acts on each atom
independently and the centre of mass is left free (``fixcm=False``), so every
replica is an independent NVT trajectory. Every ``interval_fs`` a frame of each
replica is kept, unless the replica has left the :class:`~equiprop.sampling.guard.Guard`
bounds (checked every ``check_fs``) or its force spread exceeds
``max_forces_std`` (judged at kept frames); then that replica stops and the
others go on. A replica that leaves the bounds also keeps its last state
inside them (``info["md_edge"]``): a collapse takes a few tens of fs, so the
frames at the edge of the hole, which teach the repulsion, would otherwise
fall between two kept frames. The spread comes from ``spread``, a function of the kept
frames, so the dynamics can follow one committee member while the whole
committee judges only the kept frames, as DeePMD-kit's LAMMPS interface does
for DP-GEN (one model integrates, all of them give the model deviation every
``out_freq`` steps): an MD step then costs one model call, not one per member.
"""

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation, thermalize_momenta

from equiprop.keys import TOTAL_CHARGE_KEY
from equiprop.sampling.guard import Guard


@dataclass(frozen=True)
class MDSettings:
    """Temperature (K), times (fs), friction (1/fs), replica spacing (Angstrom)."""

    temperature: float = 300.0
    duration_fs: float = 1000.0
    timestep_fs: float = 0.5  # flexible O-H bonds vibrate with a 9 fs period
    interval_fs: float = 50.0  # between kept frames: hydrogen-bond librations decorrelate in ~50-100 fs
    check_fs: float = 10.0  # the guard looks this often; a replica leaving it keeps its last state in bounds
    friction_per_fs: float = 0.01  # a 100 fs thermostat time constant
    spacing: float = 100.0


@dataclass
class Trajectory:
    """Frames kept from one replica, and why it stopped early (None: it ran the whole duration)."""

    frames: list[Atoms] = field(default_factory=list)
    stopped: str | None = None


def run_replicas(starts: list[Atoms], calc, settings: MDSettings = MDSettings(), seed: int = 0,
                 guard: Guard = Guard(), max_forces_std: float | None = None, labels: list[str] | None = None,
                 spread=None) -> list[Trajectory]:
    """One Langevin trajectory per structure of ``starts``; frames carry ``info`` about how they were made.

    ``labels`` name the trajectories (``info["trajectory"]``); frames also get
    ``sample="md"``, ``md_temperature`` (K) and ``md_time_fs``. ``spread``:
    ``list[Atoms] -> list[per-atom forces_std]`` (eV/Angstrom) for the stop at
    ``max_forces_std``; without it, the calculator's own ``forces_std`` (a committee's).
    """
    rng = np.random.RandomState(seed)
    labels = labels or [str(k) for k in range(len(starts))]
    trajectories = [Trajectory() for _ in starts]
    active = list(range(len(starts)))
    replicas = [_thermalised(a, settings.temperature, rng) for a in starts]
    check_fs = min(settings.check_fs, settings.interval_fs)
    steps = max(int(round(check_fs / settings.timestep_fs)), 1)
    per_frame = max(int(round(settings.interval_fs / check_fs)), 1)
    last_in_bounds: dict[int, Atoms] = {}  # each replica's last checked state that was not kept as a frame
    for check in range(1, int(round(settings.duration_fs / check_fs)) + 1):
        if not active:
            break
        time_fs = check * steps * settings.timestep_fs
        _advance(replicas, active, calc, settings, steps, rng)
        keep = check % per_frame == 0
        judged = _spreads([replicas[k] for k in active], calc, spread) if keep and max_forces_std is not None else None
        still = []
        for slot, k in enumerate(active):
            problem = guard.problem(replicas[k])
            distrust = _distrust(judged[slot], max_forces_std) if judged is not None and problem is None else None
            if problem or distrust:
                trajectories[k].stopped = f"at {time_fs:.0f} fs: {problem or distrust}"
                if problem and k in last_in_bounds:  # the way into the hole: the edge of what the model knows
                    trajectories[k].frames.append(last_in_bounds[k])
                continue
            frame = _frame(replicas[k], settings.temperature, time_fs, labels[k], edge=not keep)
            if keep:
                trajectories[k].frames.append(frame)
                last_in_bounds.pop(k, None)
            else:
                last_in_bounds[k] = frame
            still.append(k)
        active = still
    return trajectories


def _advance(replicas: list[Atoms], active: list[int], calc, settings: MDSettings, steps: int, rng) -> None:
    """``steps`` Langevin steps of the ``active`` replicas side by side (replicas updated in place)."""
    system, offsets = _side_by_side([replicas[k] for k in active], settings.spacing)
    system.calc = calc
    dynamics = Langevin(system, timestep=settings.timestep_fs * units.fs, temperature_K=settings.temperature,
                        friction=settings.friction_per_fs / units.fs, fixcm=False, rng=rng)
    dynamics.run(steps)
    for slot, (k, (start, stop)) in enumerate(zip(active, offsets)):
        replicas[k] = with_charge(_cut(system, start, stop, slot * settings.spacing), replicas[k])


def _distrust(spread: np.ndarray | None, limit: float) -> str | None:
    worst = float(np.max(spread)) if spread is not None else 0.0
    return f"force spread {worst:.2f} eV/A > {limit}" if worst > limit else None


def _frame(replica: Atoms, temperature: float, time_fs: float, label: str, edge: bool) -> Atoms:
    frame = with_charge(Atoms(replica.numbers, replica.positions), replica)
    frame.info.update(sample="md", md_temperature=float(temperature), md_time_fs=float(time_fs), trajectory=label)
    if edge:
        frame.info["md_edge"] = True  # kept only because the next check left the guard's bounds
    return frame


def _spreads(replicas: list[Atoms], calc, spread) -> list:
    """Per-atom force spread of each replica now: from ``spread``, else the calculator's last ``forces_std``."""
    if spread is not None:
        return list(spread(replicas))
    last, start, out = calc.results.get("forces_std"), 0, []
    for replica in replicas:
        out.append(None if last is None else last[start : start + len(replica)])
        start += len(replica)
    return out


def _thermalised(atoms: Atoms, temperature: float, rng) -> Atoms:
    replica = with_charge(Atoms(atoms.numbers, atoms.positions - atoms.positions.mean(axis=0)), atoms)
    thermalize_momenta(replica, temperature_K=temperature, rng=rng)
    Stationary(replica)
    ZeroRotation(replica)
    return replica


def _side_by_side(replicas: list[Atoms], spacing: float) -> tuple[Atoms, list[tuple[int, int]]]:
    """One Atoms with replica k shifted by ``k * spacing`` along x; atom ranges of each replica."""
    system, offsets, start = Atoms(), [], 0
    for k, replica in enumerate(replicas):
        moved = replica.copy()
        moved.positions += (k * spacing, 0.0, 0.0)
        system += moved
        offsets.append((start, start + len(replica)))
        start += len(replica)
    charges = [r.info[TOTAL_CHARGE_KEY] for r in replicas if TOTAL_CHARGE_KEY in r.info]
    if charges:
        system.info[TOTAL_CHARGE_KEY] = sum(charges)
    return system, offsets


def with_charge(atoms: Atoms, source: Atoms) -> Atoms:
    """``atoms`` with the total charge of ``source`` (``info["charge"]``), if it has one."""
    if TOTAL_CHARGE_KEY in source.info:
        atoms.info[TOTAL_CHARGE_KEY] = source.info[TOTAL_CHARGE_KEY]
    return atoms


def _cut(system: Atoms, start: int, stop: int, shift: float) -> Atoms:
    """Replica atoms ``start:stop`` moved back to the origin, with their velocities."""
    replica = Atoms(system.numbers[start:stop], system.positions[start:stop] - (shift, 0.0, 0.0))
    replica.set_momenta(system.get_momenta()[start:stop])
    return replica
