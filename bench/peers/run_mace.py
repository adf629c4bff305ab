"""Train MACE 0.3.16's EnergyDipolesMACE on a split folder; report speed and accuracy as JSON.

Runs in bench/.venvs/mace (see setup_peers.sh and README.md):

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 bench/.venvs/mace/bin/python bench/peers/run_mace.py \
        --split-dir /tmp/split --budget 60 --out mace.json

The model is built the way MACE's own `mace_run_train --model EnergyDipolesMACE`
builds it (tools/model_script_utils.py): RealAgnosticInteractionBlock first,
RealAgnosticResidualInteractionBlock after, 8 Bessel functions, polynomial
cutoff p=5, radial MLP [64, 64, 64], MLP_irreps 16x0e, silu gate,
avg_num_neighbors from the training set and atomic energies (E0s) from least
squares on the training set (mace.data.compute_average_E0s). EnergyDipolesMACE
takes no scale/shift: MACE's trainer computes the rms-forces scaling for it but
never passes it to this model, so none is applied here either (the value is
reported). Data: mace.data.config_from_atoms + AtomicData.from_config and the
torch_geometric DataLoader shipped with MACE. EnergyDipolesMACE predicts no
atomic charges: a "charges" target is dropped and reported as null.

--lmax sets the hidden irreps' highest L (MACE's --max_L; hidden irreps
"{features}x0e + {features}x1o" for 1), --max-ell the spherical harmonics.
"""

import importlib.metadata
import os
import sys
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # e3nn 0.4.4 torch.load()s its constants

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402

from e3nn import o3  # noqa: E402
from mace import data as mace_data, modules, tools  # noqa: E402
from mace.tools import torch_geometric  # noqa: E402

MODELS = ["mace"]
SUPPORTED = ("energy", "forces", "dipole")


# ----------------------------------------------------------------------------- data


def key_specification(args) -> mace_data.KeySpecification:
    """Map MACE's property names onto the dft_* keys. No "charges" key: MACE would use
    it as fixed charges in the dipole (data["charges"]), i.e. feed it the reference."""
    return mace_data.KeySpecification(
        info_keys={"energy": args.energy_key, "dipole": args.dipole_key},
        arrays_keys={"forces": args.forces_key},
    )


def to_atomic_data(frames: list[pc.Frame], keyspec, z_table, cutoff: float) -> tuple[list, list]:
    configs = [mace_data.config_from_atoms(f.atoms, key_specification=keyspec) for f in frames]
    return configs, [mace_data.AtomicData.from_config(c, z_table=z_table, cutoff=cutoff) for c in configs]


def loader(dataset, batch_size: int, shuffle: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return torch_geometric.dataloader.DataLoader(dataset=dataset, batch_size=batch_size, shuffle=shuffle,
                                                 drop_last=False, generator=generator)


def n_atoms_of(batch) -> torch.Tensor:
    return batch.ptr[1:] - batch.ptr[:-1]


# ----------------------------------------------------------------------------- model


def hidden_irreps(features: int, max_l: int) -> o3.Irreps:
    parity = {0: "e", 1: "o", 2: "e", 3: "o"}
    return o3.Irreps("+".join(f"{features}x{l}{parity[l]}" for l in range(max_l + 1)))


def build_model(args, z_table, atomic_energies: np.ndarray, avg_num_neighbors: float):
    return modules.EnergyDipolesMACE(
        r_max=args.cutoff,
        num_bessel=args.num_bessel,
        num_polynomial_cutoff=args.num_cutoff_basis,
        max_ell=args.max_ell,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticInteractionBlock"],
        num_interactions=args.interactions,
        num_elements=len(z_table),
        hidden_irreps=hidden_irreps(args.features, args.lmax),
        MLP_irreps=o3.Irreps(args.mlp_irreps),
        avg_num_neighbors=avg_num_neighbors,
        atomic_numbers=z_table.zs,
        correlation=args.correlation,
        gate=modules.gate_dict["silu"],
        atomic_energies=atomic_energies,
        radial_MLP=[64, 64, 64],
    )


def predictions(out: dict, targets: list[str]) -> dict:
    return {t: out[t] for t in targets}


def references(batch, targets: list[str]) -> dict:
    return {t: getattr(batch, t).reshape(-1, 3) if t == "dipole" else getattr(batch, t) for t in targets}


# ----------------------------------------------------------------------------- training and evaluation


def make_step(model, optimizer, targets, stats, weights, grad_clip, device):
    def step(batch):
        batch = batch.to(device)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        out = model(batch.to_dict(), training=True, compute_force="forces" in targets)
        loss = pc.normalized_loss(predictions(out, targets), references(batch, targets), n_atoms_of(batch),
                                  stats.scales, weights)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return int(batch.num_graphs), float(loss.detach())

    return step


def make_predict(model, targets, frames_by_batch):
    """Eval-mode predictions vs. the float64 labels of the original frames."""
    def predict(item):
        k, batch = item
        model.eval()
        out = model(batch.to_dict(), training=False, compute_force=True)
        pred = {t: out[t].detach().double().cpu().numpy() for t in targets}
        frames = frames_by_batch[k]
        ref = {
            "energy": np.array([f.energy for f in frames]),
            "forces": np.concatenate([f.forces for f in frames]),
            "dipole": np.stack([f.dipole for f in frames]),
        }
        return pred, {t: ref[t] for t in targets}, np.array([f.n_atoms for f in frames])

    return predict


def make_forward(model):
    """Inference: eval mode, energy + forces (autograd) + dipole in one call."""
    def forward(batch):
        return model(batch.to_dict(), training=False, compute_force=True)

    return forward


def main(argv=None):
    parser = pc.build_parser(__doc__.splitlines()[0], MODELS, default_lr=0.01, default_grad_clip=10.0)
    parser.set_defaults(interactions=2, lmax=1, targets="energy,forces,dipole")
    parser.add_argument("--max-ell", type=int, default=3, help="spherical harmonics (MACE --max_ell)")
    parser.add_argument("--correlation", type=int, default=3)
    parser.add_argument("--num-bessel", type=int, default=8)
    parser.add_argument("--num-cutoff-basis", type=int, default=5)
    parser.add_argument("--mlp-irreps", default="16x0e")
    parser.add_argument("--amsgrad", type=int, choices=(0, 1), default=1, help="MACE's default optimizer is Adam(amsgrad=True)")
    args = parser.parse_args(argv)
    requested = [t.strip() for t in args.targets.split(",") if t.strip()]
    dropped = [t for t in requested if t == "charges"]
    if dropped:
        print("note: EnergyDipolesMACE has no per-atom charge output; dropping target 'charges'", flush=True)
    if not [t for t in requested if t != "charges"]:
        raise SystemExit(f"--targets {args.targets}: nothing left that MACE supports ({','.join(SUPPORTED)})")
    targets = pc.parse_targets(",".join(t for t in requested if t != "charges"), SUPPORTED)
    pc.setup_torch(args)
    tools.set_default_dtype("float32")
    device = torch.device(args.device)

    data = pc.read_split(args.split_dir, args)
    stats = pc.fit_train_stats(data["train"])  # loss scales (same definition as for the other peers)
    z_table = tools.get_atomic_number_table_from_zs(stats.elements)
    keyspec = key_specification(args)
    converted = {name: to_atomic_data(frames, keyspec, z_table, args.cutoff) for name, frames in data.items()}
    train_configs, train_set = converted["train"]

    e0s = mace_data.compute_average_E0s(train_configs, z_table)  # least squares, as mace's E0s="average"
    atomic_energies = np.array([e0s[z] for z in z_table.zs])
    stats_loader = loader(train_set, args.batch_size, shuffle=False)
    avg_num_neighbors = modules.compute_avg_num_neighbors(stats_loader)
    mean, rms_forces = modules.scaling_classes["rms_forces_scaling"](stats_loader, atomic_energies)

    model = build_model(args, z_table, atomic_energies, avg_num_neighbors).to(device)
    n_params = pc.count_parameters(model)
    print(f"MACE EnergyDipolesMACE: {n_params} parameters, targets {targets}", flush=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, amsgrad=bool(args.amsgrad))
    weights = {t: getattr(args, f"{t}_weight") for t in targets}

    def fixed_batches(name):
        frames, (_, dataset) = data[name], converted[name]
        batches = [b.to(device) for b in loader(dataset, args.batch_size, shuffle=False)]
        chunks = [frames[i : i + args.batch_size] for i in range(0, len(frames), args.batch_size)]
        return batches, chunks

    test_batches, test_chunks = fixed_batches("test")
    val_batches, val_chunks = fixed_batches("val")
    recipe = pc.Recipe(model, optimizer, args, lambda m: pc.validation_loss(
        enumerate(val_batches), make_predict(m, targets, val_chunks), stats.scales, weights))
    train_loader = loader(train_set, args.batch_size, shuffle=True, seed=args.seed)
    log = pc.train_for_budget(lambda: train_loader, make_step(model, optimizer, targets, stats, weights,
                                                              args.grad_clip, device),
                              args.budget, args.warmup_batches, len(train_set), recipe=recipe)
    model = recipe.final_model()
    test_mae = pc.evaluate(enumerate(test_batches), make_predict(model, targets, test_chunks), targets)
    val_mae = pc.evaluate(enumerate(val_batches), make_predict(model, targets, val_chunks), targets)

    model.eval()
    inference = pc.measure_inference(test_batches, make_forward(model), len(data["test"]),
                                     sum(f.n_atoms for f in data["test"]), args.inference_seconds)

    report = pc.base_report(
        "mace-torch", importlib.metadata.version("mace-torch"), args, targets, data, stats, n_params,
        log, inference, test_mae, val_mae,
        settings={
            "architecture": "EnergyDipolesMACE",
            "hidden_irreps": str(hidden_irreps(args.features, args.lmax)),
            "max_ell": args.max_ell, "correlation": args.correlation, "num_bessel": args.num_bessel,
            "num_polynomial_cutoff": args.num_cutoff_basis, "MLP_irreps": args.mlp_irreps,
            "radial_MLP": [64, 64, 64], "gate": "silu",
            "interaction_first": "RealAgnosticInteractionBlock",
            "interaction": "RealAgnosticResidualInteractionBlock",
            "avg_num_neighbors": avg_num_neighbors,
            "E0s": {str(z): float(e) for z, e in e0s.items()},
            "scale_shift": "none (EnergyDipolesMACE has no scale/shift; mace's trainer does not apply one)",
            "rms_forces_scaling_not_applied": {"mean": float(np.asarray(mean).reshape(-1)[0]),
                                               "std": float(np.asarray(rms_forces).reshape(-1)[0])},
            "charges": "not supported by EnergyDipolesMACE (null); no fixed charges given to the model",
            "dropped_targets": dropped,
            "e3nn": importlib.metadata.version("e3nn"),
            "optimizer": "Adam(amsgrad=%s)" % bool(args.amsgrad), **recipe.settings(),
            "loss": "sum_t w_t * mean(((pred_t - ref_t) / scale_t)^2); energy per atom",
        },
    )
    report["val_loss"] = pc.validation_loss(enumerate(val_batches), make_predict(model, targets, val_chunks),
                                            stats.scales, weights)
    pc.write_report(args.out, report)


if __name__ == "__main__":
    main()
