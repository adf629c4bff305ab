"""Heads on one representation against a plain ensemble: what a committee's spread is worth and costs.

``python bench/shared_heads.py OUT [--seconds 300] [--heads 3] [--seed 0]``

Issue 18 asks how committee members should share work. Two committees of
``--heads`` members, each trained for ``--seconds`` in all on the default data
and split (``equiprop train`` defaults: SO3Net, four targets, multipole
electrostatics):

- *plain*: ``equiprop train --ensemble HEADS`` (separate networks, each ``seconds / HEADS``);
- *shared*: one SO3Net whose energy head is replaced by ``HEADS`` independently initialised
  heads (representation, charges, dipole and electrostatics shared); the loss is the mean of
  the heads' losses, so each head is trained on the full loss. Forces need one backward pass
  through the shared representation per head.

For both it prints the epochs, the seconds per epoch and per training frame, and on the test
split (all kinds, and the sampled frames alone) the mean's errors and the Spearman rank
correlation per structure between the mean ``forces_std`` and the force RMSE (what
``RUN/calibration.json`` reports for a committee). Asserts nothing.
"""

import argparse
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from equiprop.data.split import structure_kind
from equiprop.keys import Property
from equiprop.models.checkpoint import load_model
from equiprop.models.committee import Committee
from equiprop.nn.readout import ScalarReadout
from equiprop.train.config import TrainConfig
from equiprop.train.evaluate import evaluate
from equiprop.train.loop import Trainer
from equiprop.train.prepare import build_model, fit_normalization, mean_neighbors, prepare_data, resolved


class StackedHeads(nn.Module):
    """``heads`` scalar readouts side by side: ``[n_atoms, features]`` -> ``[n_atoms, n_heads]``."""

    def __init__(self, heads):
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, scalars: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(scalars) for head in self.heads], dim=1)


class Column(nn.Module):
    """An energy term ``[n_structures]`` as a column ``[n_structures, 1]``, added to every head."""

    def __init__(self, term: nn.Module):
        super().__init__()
        self.term = term

    def forward(self, *args):
        return self.term(*args)[:, None]


class SharedHeads(nn.Module):
    """``model`` with ``n_heads`` energy heads; :meth:`forward` stacks energies ``[H, n_structures]``
    and forces ``[H, n_atoms, 3]`` on a leading head axis (the loss then averages the heads)."""

    def __init__(self, model, n_heads: int, features: int):
        super().__init__()
        if model.repulsion is not None:
            raise ValueError("shared heads: a repulsion floor is not wrapped as a column; train without --repulsion")
        model.energy_head = StackedHeads([model.energy_head] + [ScalarReadout(features) for _ in range(n_heads - 1)])
        for head in model.energy_head.heads[1:]:  # zero_init would make every head's last layer start alike
            nn.init.normal_(head.net[-1].weight, std=1e-3)
        if model.electrostatics is not None:
            model.electrostatics = Column(model.electrostatics)
        self.model, self.n_heads = model, n_heads
        self.element_energies = model.element_energies

    def forward(self, batch, compute_forces: bool = False, compute_stress: bool = False, relative: bool = False):
        positions = batch.positions.detach().requires_grad_(compute_forces)
        with torch.set_grad_enabled(compute_forces or torch.is_grad_enabled()):
            out = self.model.outputs(batch, positions, references=False)
            energy = out[Property.ENERGY]  # [n_structures, H]
            if not relative:
                energy = energy + self.model.reference_energy(batch)[:, None]
            if compute_forces:
                out[Property.FORCES] = -torch.stack([
                    torch.autograd.grad(energy[:, k].sum(), positions, create_graph=self.training, retain_graph=True)[0]
                    for k in range(self.n_heads)])
        out[Property.ENERGY] = energy.T
        return out


class SharedCommittee(Committee):
    """A :class:`SharedHeads` model seen as a committee (predict, spread) of its heads."""

    def __init__(self, shared: SharedHeads):
        nn.Module.__init__(self)
        self.shared = shared
        self.members = nn.ModuleList([shared.model])  # hparams, element_energies
        self.type_map, self.cutoff, self.targets = shared.model.type_map, shared.model.cutoff, shared.model.targets

    def __len__(self) -> int:
        return self.shared.n_heads

    def member_outputs(self, batch, compute_forces=False, relative_energy=False, compute_stress=False):
        out = self.shared(batch, compute_forces, relative=relative_energy)
        heads = self.shared.n_heads
        return {p: v if p in (Property.ENERGY, Property.FORCES) else v.expand(heads, *v.shape) for p, v in out.items()}


def train_shared(config: TrainConfig, heads: int, run_dir: Path):
    run_dir.mkdir(parents=True, exist_ok=True)  # metrics.csv
    splits = prepare_data(config)
    config = resolved(config, splits)
    torch.manual_seed(config.seed)
    model = build_model(config, splits.type_map, mean_neighbors(splits.train))
    scales = fit_normalization(model, splits.train)
    shared = SharedHeads(model, heads, config.features)
    trainer = Trainer(config, shared, splits.train, splits.val, scales, run_dir, log=lambda message: None)
    best = {}

    def keep(name, best_=False):
        if best_:
            best["state"] = copy.deepcopy(trainer.ema.module.state_dict())

    trainer.save = lambda name, best=False: keep(name, best)
    progress = trainer.fit()
    shared.load_state_dict(best["state"])
    return SharedCommittee(shared.eval()), splits, progress.epoch, progress.elapsed


def member_costs(run: Path) -> tuple[int, float]:
    """(epochs of the first member, training seconds of one epoch of every member together) of a plain committee."""
    epochs, per_epoch = [], 0.0
    for metrics in sorted(run.glob("member-*/metrics.csv")):
        seconds = np.atleast_1d(np.genfromtxt(metrics, delimiter=",", names=True)["seconds"])
        epochs.append(len(seconds))
        per_epoch += float(seconds[-1]) / len(seconds)
    return epochs[0], per_epoch


def report(name: str, committee, test, forces_key: str, epochs: int, s_per_epoch: float, n_train: int) -> dict:
    """Errors, spread and cost; ``s_per_epoch``: training seconds for one pass of every member over the data."""
    metrics = evaluate(committee, test).metrics
    out = committee.predict(test.frames)
    spread = np.array([s.mean() for s in out["forces_std"]])
    error = np.array([np.sqrt(((f - a.arrays[forces_key]) ** 2).mean()) for f, a in zip(out["forces"], test.frames)])
    sampled = np.array([not structure_kind(a).startswith("random") for a in test.frames])
    row = {"epochs_per_member": epochs, "committee_s_per_epoch": round(s_per_epoch, 2),
           "committee_ms_per_frame": round(1000 * s_per_epoch / n_train, 2),
           "energy_meV_atom": metrics["energy"]["mae"], "forces_meV_A": metrics["forces"]["mae"],
           "mean_forces_std_meV_A": 1000 * float(spread.mean()),
           "spearman_all": float(spearmanr(spread, error).statistic),
           "spearman_sampled": float(spearmanr(spread[sampled], error[sampled]).statistic),
           "n_test": len(test.frames), "n_sampled": int(sampled.sum())}
    print(name, json.dumps(row))
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--heads", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = TrainConfig(max_time=args.seconds, epochs=10_000, seed=args.seed, out=str(out / "shared"))
    shared, splits, epochs, seconds = train_shared(config, args.heads, out / "shared")
    rows = {"shared": report("shared", shared, splits.test, config.forces_key, epochs, seconds / epochs, len(splits.train))}
    plain = out / "plain"
    subprocess.run([sys.executable, "-m", "equiprop", "train", "--ensemble", str(args.heads), "--max-time", str(args.seconds),
                    "--epochs", "10000", "--seed", str(args.seed), "--out", str(plain), "--overwrite"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    epochs, per_epoch = member_costs(plain)
    rows["plain"] = report("plain", load_model(plain / "best.pt"), splits.test, config.forces_key, epochs, per_epoch,
                           len(splits.train))
    (out / "shared_heads.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
