"""Train NequIP 0.19.1's NequIPGNNModel (energy + forces) on a split folder; report speed and accuracy as JSON.

Runs in bench/.venvs/nequip (see setup_peers.sh and README.md):

    bench/.venvs/nequip/bin/python bench/peers/run_nequip.py \
        --split-dir /tmp/split --budget 60 --interactions 3 --targets energy,forces --out nequip.json

The model is nequip's own builder, ``nequip.model.NequIPGNNModel`` (what a
nequip config's ``model: _target_: nequip.model.NequIPGNNModel`` builds), with
the benchmark's sizes: ``r_max`` = --cutoff, ``num_layers`` = --interactions,
``l_max`` = --lmax, ``num_features`` = --features, ``type_names`` = the
training set's elements. Everything else is the builder's default: parity on,
8 Bessel functions (not trainable), polynomial cutoff p = 6, radial MLP depth 1
and width 128, type embedding of ``num_features`` scalars, no readout hidden
layer, silu/tanh gates, float32 (``model_dtype``). As nequip's
``CommonDataStatisticsManager`` recommends: ``avg_num_neighbors`` is the mean
neighbour count of the training set (nequip's ``NumNeighbors`` + ``Mean``),
``per_type_energy_shifts`` are the training set's least-squares element
energies (not trainable) and ``per_type_energy_scales`` the RMS force component
of the training set (one value, not trainable), as equiprop and MACE scale.
nequip adds the shifts in float64 (``PerTypeScaleShift``), so total energies
carry no float32 rounding of the ~ -4150 eV per water. No ZBL pair potential
(nequip's tutorial adds one as a short-range prior for MD; no other model here
has one).

Data: nequip's ``AtomicDataDict`` via ``nequip.data.from_ase`` (labels mapped
from the ``--energy-key``/``--forces-key`` fields), its
``ChemicalSpeciesToAtomTypeMapper`` and ``NeighborListTransform`` (matscipy,
nequip's default) once per structure, batches by
``AtomicDataDict.batched_from_list`` (nequip's default collate function).
Forces (and, unused, the virial) come from the model's ``ForceStressOutput``
(autograd). No Lightning trainer: peer_common's time-budgeted loop with Adam
(lr 0.01, nequip's tutorial config) and its shared loss.

NequIP predicts energies and forces only: other targets are refused.
"""

import copy
import importlib.metadata
import sys
from pathlib import Path

import ase.data
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402

from nequip.data import (AtomicDataDict, DEFAULT_NEIGHBORLIST_BACKEND, DataStatisticsManager, Mean,  # noqa: E402
                         NumNeighbors, from_ase)
from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform  # noqa: E402
from nequip.model import NequIPGNNModel  # noqa: E402
from nequip.utils.global_state import set_global_state  # noqa: E402

MODELS = ["nequip"]
SUPPORTED = ("energy", "forces")
KEY = {"energy": AtomicDataDict.TOTAL_ENERGY_KEY, "forces": AtomicDataDict.FORCE_KEY}


# ----------------------------------------------------------------------------- data


def to_atomic_data(frame: pc.Frame, args, targets: list[str], transforms) -> AtomicDataDict.Type:
    """One structure as an AtomicDataDict (float64) with atom types, neighbour list and labels.

    Labels: ``total_energy`` [1, 1] (eV) and ``forces`` [n, 3] (eV/A), mapped by
    ``from_ase`` from the split's keys. Every other info/array/calculator field
    is left out (an unregistered key would stop nequip's batching).
    """
    a = frame.atoms
    mapping = {args.energy_key: AtomicDataDict.TOTAL_ENERGY_KEY}
    if "forces" in targets:
        mapping[args.forces_key] = AtomicDataDict.FORCE_KEY
    present = set(a.info) | set(a.arrays) | (set(a.calc.results) if a.calc is not None else set())
    data = from_ase(a, key_mapping=mapping, exclude_keys=[k for k in present if k not in mapping])
    for transform in transforms:
        data = transform(data)
    return data


def prepare(frames: list[pc.Frame], args, targets: list[str], type_names: list[str]) -> list[AtomicDataDict.Type]:
    transforms = [ChemicalSpeciesToAtomTypeMapper(model_type_names=type_names),
                  NeighborListTransform(r_max=args.cutoff, backend=args.nl_backend)]
    return [to_atomic_data(f, args, targets, transforms) for f in frames]


def collate(items: list[AtomicDataDict.Type], device) -> AtomicDataDict.Type:
    return AtomicDataDict.to_(AtomicDataDict.batched_from_list(items), device)


def mean_num_neighbors(graphs: list[AtomicDataDict.Type], batch_size: int) -> float:
    """nequip's ``num_neighbors_mean`` statistic (as CommonDataStatisticsManager) over the training graphs."""
    manager = DataStatisticsManager([{"name": "num_neighbors_mean", "field": NumNeighbors(), "metric": Mean()}])
    batches = (AtomicDataDict.batched_from_list(graphs[i : i + batch_size]) for i in range(0, len(graphs), batch_size))
    return float(manager.get_statistics(batches)["num_neighbors_mean"])


# ----------------------------------------------------------------------------- model


def build_model(args, targets: list[str], type_names: list[str], stats: pc.TrainStats, energy_scale: float,
                avg_num_neighbors: float):
    shifts = {ase.data.chemical_symbols[z]: float(e) for z, e in stats.element_energies.items()}
    return NequIPGNNModel(
        seed=args.seed,
        model_dtype="float32",
        type_names=type_names,
        r_max=args.cutoff,
        num_layers=args.interactions,
        l_max=args.lmax,
        parity=bool(args.parity),
        num_features=args.features,
        radial_mlp_depth=args.radial_mlp_depth,
        radial_mlp_width=args.radial_mlp_width,
        num_bessels=args.num_bessels,
        polynomial_cutoff_p=args.polynomial_cutoff_p,
        avg_num_neighbors=avg_num_neighbors,
        per_type_energy_shifts=shifts,
        per_type_energy_scales=float(energy_scale),
        per_type_energy_shifts_trainable=False,
        per_type_energy_scales_trainable=False,
        do_derivatives="forces" in targets,
    )


def layer_irreps(model) -> list[str]:
    """The node-feature irreps each interaction layer actually outputs (nequip drops unreachable ones)."""
    return [str(m.irreps_out[AtomicDataDict.NODE_FEATURES_KEY]) for name, m in model.named_modules()
            if name.endswith("_convnet")]


def copy_stable(model):
    """The model in a form whose ``copy.deepcopy`` has the same parameters and buffers, in the same order.

    pc.Recipe pairs the averaged copy's parameters and buffers with the model's by
    position. e3nn's code-generated tensor products share their constant tensors
    (Clebsch-Gordan blocks) between layers in a freshly built model, and
    ``Module.buffers()`` lists a shared tensor once; a deep copy regenerates the
    code with one constant per layer, so the copy lists more buffers and the
    pairing would be wrong (it fails at the first average update). A model that
    is itself a deep copy copies exactly; this returns one and checks that.
    """
    model = copy.deepcopy(model)
    twin = copy.deepcopy(model)
    for kind in ("named_parameters", "named_buffers"):
        mine = [(n, tuple(t.shape)) for n, t in getattr(model, kind)()]
        if mine != [(n, tuple(t.shape)) for n, t in getattr(twin, kind)()]:
            raise SystemExit(f"nequip model: deepcopy changes its {kind}; the moving average cannot pair them")
    return model


def predictions(out: dict, targets: list[str]) -> dict:
    """Model outputs in the loss' shapes: energy [B], forces [N, 3] (float64: nequip's output dtype)."""
    return {t: out[KEY[t]].reshape(-1) if t == "energy" else out[KEY[t]] for t in targets}


def n_atoms_of(batch) -> torch.Tensor:
    return batch[AtomicDataDict.NUM_NODES_KEY]


# ----------------------------------------------------------------------------- training and evaluation


def make_step(model, optimizer, targets, stats, weights, grad_clip):
    def step(batch):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        out = model(batch)
        loss = pc.normalized_loss(predictions(out, targets), predictions(batch, targets), n_atoms_of(batch),
                                  stats.scales, weights)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return int(n_atoms_of(batch).numel()), float(loss.detach())

    return step


def make_predict(model, targets):
    """Eval-mode predictions (total energies, shifts included) and the batch's float64 labels, as numpy."""
    def predict(batch):
        model.eval()
        out = model(batch)
        pred = {t: v.detach().double().cpu().numpy() for t, v in predictions(out, targets).items()}
        ref = {t: v.double().cpu().numpy() for t, v in predictions(batch, targets).items()}
        return pred, ref, n_atoms_of(batch).cpu().numpy()

    return predict


def make_forward(model):
    """Inference: eval mode, energy + forces (autograd) in one call."""
    def forward(batch):
        return model(batch)

    return forward


def main(argv=None):
    parser = pc.build_parser(__doc__.splitlines()[0], MODELS, default_lr=0.01, default_grad_clip=0.0)
    parser.set_defaults(targets="energy,forces")
    parser.add_argument("--parity", type=int, choices=(0, 1), default=1, help="NequIPGNNModel parity (its default: on)")
    parser.add_argument("--radial-mlp-depth", type=int, default=1, help="NequIPGNNModel default")
    parser.add_argument("--radial-mlp-width", type=int, default=128, help="NequIPGNNModel default")
    parser.add_argument("--num-bessels", type=int, default=8)
    parser.add_argument("--polynomial-cutoff-p", type=int, default=6)
    parser.add_argument("--nl-backend", default=DEFAULT_NEIGHBORLIST_BACKEND, help="nequip neighbour-list backend")
    args = parser.parse_args(argv)
    targets = pc.parse_targets(args.targets, SUPPORTED)
    set_global_state()  # nequip's: float64 data, e3nn settings; must precede model building (seeds; re-seeded next)
    pc.setup_torch(args)
    device = torch.device(args.device)

    data = pc.read_split(args.split_dir, args)
    stats = pc.fit_train_stats(data["train"])
    type_names = [ase.data.chemical_symbols[z] for z in stats.elements]
    # per-atom energy scale: the RMS force component when forces are trained (forces are derivatives of
    # the scaled output, as equiprop and MACE), else the per-atom energy spread
    energy_scale = stats.scales["forces"] if "forces" in targets else stats.scales["energy"]
    prepared = {name: prepare(frames, args, targets, type_names) for name, frames in data.items()}
    avg_num_neighbors = mean_num_neighbors(prepared["train"], args.batch_size)

    model = copy_stable(build_model(args, targets, type_names, stats, energy_scale, avg_num_neighbors)).to(device)
    n_params = pc.count_parameters(model)
    print(f"NequIP NequIPGNNModel: {n_params} parameters, targets {targets}, layers {layer_irreps(model)}", flush=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    weights = {t: getattr(args, f"{t}_weight") for t in targets}

    done = pc.train_and_test(args, model, optimizer, prepared, lambda items: collate(items, device),
                             make_step(model, optimizer, targets, stats, weights, args.grad_clip),
                             lambda m: make_predict(m, targets), make_forward, stats.scales, weights, targets,
                             sum(f.n_atoms for f in data["test"]))
    model = done.model

    report = pc.base_report(
        "nequip", importlib.metadata.version("nequip"), args, targets, data, stats, n_params,
        done.log, done.inference, done.test_mae, done.val_mae,
        settings={
            "architecture": "NequIPGNNModel (nequip.model builder; GraphModel(ForceStressOutput(...)))",
            "l_max": args.lmax, "num_layers": args.interactions, "num_features": args.features,
            "parity": bool(args.parity), "layer_irreps_out": layer_irreps(model),
            "radial_basis": f"Bessel({args.num_bessels}, not trainable) * PolynomialCutoff(p={args.polynomial_cutoff_p})",
            "radial_mlp": {"depth": args.radial_mlp_depth, "width": args.radial_mlp_width},
            "avg_num_neighbors": avg_num_neighbors,
            "per_type_energy_shifts": {ase.data.chemical_symbols[z]: e for z, e in stats.element_energies.items()},
            "per_type_energy_scales": energy_scale,
            "scale_shift": "PerTypeScaleShift: least-squares element energies (shifts), RMS force component (one "
                           "scale), neither trainable; applied in float64",
            "model_dtype": "float32 (data, shifts and outputs float64)",
            "pair_potential": None,
            "forces": "ForceStressOutput (autograd)" if "forces" in targets else "not computed (do_derivatives=False)",
            "neighbor_list": f"nequip NeighborListTransform (backend {args.nl_backend}, computed once per structure); "
                             "batches by AtomicDataDict.batched_from_list",
            "e3nn": importlib.metadata.version("e3nn"),
            "optimizer": "Adam", **done.recipe.settings(),
            "loss": "sum_t w_t * mean(((pred_t - ref_t) / scale_t)^2); energy per atom (total energies)",
        },
    )
    report["val_loss"] = done.val_loss
    pc.write_report(args.out, report)


if __name__ == "__main__":
    main()
