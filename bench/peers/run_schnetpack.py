"""Train a schnetpack 2.1.1 model (SchNet, PaiNN or SO3net) on a split folder; report speed and accuracy as JSON.

Runs in bench/.venvs/schnetpack (see setup_peers.sh and README.md):

    bench/.venvs/schnetpack/bin/python bench/peers/run_schnetpack.py --model painn \
        --split-dir /tmp/split --budget 60 --out painn.json

Model (schnetpack's public building blocks, no lightning):
  NeuralNetworkPotential(
      input_modules=[PairwiseDistances()],
      representation=SchNet | PaiNN | SO3net(n_atom_basis=features, n_interactions, [lmax],
                     GaussianRBF(20, cutoff), CosineCutoff(cutoff)),
      output_modules=[Atomwise(energy) -> ScaleProperty(energy, energy_scale) -> Forces(),
                      DipoleMoment(return_charges=True, correct_charges=True,
                                   use_vector_representation=PaiNN/SO3net)],
      postprocessors=[CastTo64(), AddOffsets(energy, add_atomrefs=True)])
Energy targets have the per-element offsets removed by schnetpack's RemoveOffsets
transform (atomrefs from a least-squares fit on the training set); at test time
the model's AddOffsets postprocessor adds them back, so test errors are on total
energies. Charges are the DipoleMoment module's latent charges (corrected to sum
to zero per structure), supervised with the Hirshfeld charges.
"""

import importlib.metadata
import sys
import typing
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402

MODELS = ["schnet", "painn", "so3net"]
N_RBF = 20


def import_schnetpack():
    """Import schnetpack 2.1.1 under torch 2.13.

    schnetpack 2.1.1's data/loader.py does ``from torch.utils.data.dataloader
    import _collate_fn_t, T_co``; torch 2.13 no longer defines the private
    ``T_co`` there. It is only a type variable for annotations, so define it
    before the import (no schnetpack code is changed).
    """
    import torch.utils.data.dataloader as dl

    if not hasattr(dl, "T_co"):
        dl.T_co = typing.TypeVar("T_co", covariant=True)
    import schnetpack

    return schnetpack


spk = import_schnetpack()
import schnetpack.properties as P  # noqa: E402
import schnetpack.transform as trn  # noqa: E402
from schnetpack.data.loader import _atoms_collate_fn  # noqa: E402

# target name -> schnetpack property key
KEY = {"energy": P.energy, "forces": P.forces, "dipole": P.dipole_moment, "charges": P.partial_charges,
       "dipole_magnitude": P.dipole_moment}


# ----------------------------------------------------------------------------- data


def atomrefs_tensor(stats: pc.TrainStats, zmax: int = 100) -> torch.Tensor:
    refs = torch.zeros(zmax, dtype=torch.float64)
    for z, e in stats.element_energies.items():
        refs[z] = e
    return refs


def make_offset_transform(cls, stats: pc.TrainStats, **kwargs):
    """RemoveOffsets/AddOffsets for the energy with our atomrefs.

    (Their constructors do ``atomrefs or torch.zeros(...)``, which fails for a
    tensor with more than one element, so the buffer is set after construction.)
    """
    t = cls(P.energy, **kwargs)
    t.atomref = atomrefs_tensor(stats)
    t._atomrefs_initialized = True
    return t


def structure_inputs(frame: pc.Frame, index: int, neighbor_list, remove_offsets) -> tuple[dict, dict]:
    """One structure as schnetpack inputs (with neighbour list, float32) and its targets.

    The targets are kept in a separate dict: the model writes its predictions
    into the input dict under the property names, so targets must not live there.
    The energy target has the element offsets removed (RemoveOffsets transform).
    """
    a = frame.atoms
    inputs = {
        P.idx: torch.tensor([index]),
        P.n_atoms: torch.tensor([len(a)]),
        P.Z: torch.from_numpy(a.numbers.astype(np.int64)),
        P.R: torch.from_numpy(a.positions.astype(np.float64)),
        P.cell: torch.from_numpy(np.asarray(a.cell.array, dtype=np.float64)).view(1, 3, 3),
        P.pbc: torch.from_numpy(np.asarray(a.pbc)).view(1, 3),
    }
    if frame.energy is not None:
        inputs[P.energy] = torch.tensor([frame.energy], dtype=torch.float64)
    inputs = neighbor_list(inputs)
    if frame.energy is not None:
        inputs = remove_offsets(inputs)
    inputs = trn.CastTo32()(inputs)
    targets = {}
    if frame.energy is not None:
        targets["energy"] = inputs.pop(P.energy).float()  # offsets removed
        targets["energy_total"] = torch.tensor([frame.energy], dtype=torch.float64)
    if frame.forces is not None:
        targets["forces"] = torch.from_numpy(frame.forces).float()
    if frame.dipole is not None:
        targets["dipole"] = torch.from_numpy(frame.dipole).float().view(1, 3)
    if frame.charges is not None:
        targets["charges"] = torch.from_numpy(frame.charges).float()
    if frame.dipole_magnitude is not None:
        targets["dipole_magnitude"] = torch.tensor([frame.dipole_magnitude], dtype=torch.float32)
    return inputs, targets


def prepare(frames: list[pc.Frame], args, stats: pc.TrainStats) -> list[tuple[dict, dict]]:
    neighbor_list = trn.MatScipyNeighborList(cutoff=args.cutoff)
    remove = make_offset_transform(trn.RemoveOffsets, stats, remove_atomrefs=True)
    return [structure_inputs(f, k, neighbor_list, remove) for k, f in enumerate(frames)]


def collate(items: list[tuple[dict, dict]], device) -> tuple[dict, dict]:
    """schnetpack's own collate function for the inputs; concatenation for the targets."""
    inputs = _atoms_collate_fn([i for i, _ in items])
    targets = {k: torch.cat([t[k] for _, t in items]) for k in items[0][1]}
    return ({k: v.to(device) for k, v in inputs.items()}, {k: v.to(device) for k, v in targets.items()})


# ----------------------------------------------------------------------------- model


def build_representation(args):
    radial = spk.nn.GaussianRBF(n_rbf=N_RBF, cutoff=args.cutoff)
    cutoff_fn = spk.nn.CosineCutoff(args.cutoff)
    common = dict(n_atom_basis=args.features, n_interactions=args.interactions, radial_basis=radial, cutoff_fn=cutoff_fn)
    if args.model == "schnet":
        return spk.representation.SchNet(**common)
    if args.model == "painn":
        return spk.representation.PaiNN(**common)
    return spk.representation.SO3net(**common, lmax=args.lmax, return_vector_representation=True)


def build_model(args, targets: list[str], stats: pc.TrainStats, energy_scale: float):
    outputs = []
    if "energy" in targets or "forces" in targets:
        outputs.append(spk.atomistic.Atomwise(n_in=args.features, output_key=P.energy))
        outputs.append(trn.ScaleProperty(input_key=P.energy, scale=torch.tensor([energy_scale])))
        if "forces" in targets:
            outputs.append(spk.atomistic.Forces(energy_key=P.energy, force_key=P.forces))
    if "dipole" in targets or "charges" in targets or "dipole_magnitude" in targets:
        outputs.append(spk.atomistic.DipoleMoment(
            n_in=args.features,
            predict_magnitude="dipole_magnitude" in targets,
            return_charges=True,
            correct_charges=True,  # charges sum to the total charge (0 here)
            use_vector_representation=args.model in ("painn", "so3net"),
        ))
    postprocessors = [trn.CastTo64(), make_offset_transform(trn.AddOffsets, stats, add_atomrefs=True)] \
        if ("energy" in targets or "forces" in targets) else []
    model = spk.model.NeuralNetworkPotential(
        representation=build_representation(args),
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=outputs,
        postprocessors=postprocessors,
        do_postprocessing=False,  # training compares with offset-free energies; switched on for testing
    )
    return model


def predictions(out: dict, targets: list[str]) -> dict:
    """Model outputs in the loss' shapes: energy [B], forces [N,3], dipole [B,3], charges [N]."""
    pred = {}
    for t in targets:
        v = out[KEY[t]]
        pred[t] = v.reshape(-1) if t in ("energy", "charges", "dipole_magnitude") else v
    return pred


# ----------------------------------------------------------------------------- training and evaluation


def make_step(model, optimizer, targets, stats, weights, grad_clip):
    def step(batch):
        inputs, ref = batch
        model.train()
        optimizer.zero_grad(set_to_none=True)
        pred = predictions(model(inputs), targets)
        loss = pc.normalized_loss(pred, ref, inputs[P.n_atoms], stats.scales, weights)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return int(inputs[P.n_atoms].numel()), float(loss.detach())

    return step


def make_predict(model, targets):
    """Eval-mode prediction with postprocessing (total energies), as numpy, with references."""
    def predict(batch):
        inputs, ref = batch
        model.eval()
        model.do_postprocessing = True
        out = model(dict(inputs))
        model.do_postprocessing = False
        pred = {t: v.detach().cpu().double().numpy() for t, v in predictions(out, targets).items()}
        refs = {t: ref[t].cpu().double().numpy() for t in targets}
        if "energy" in targets:
            refs["energy"] = ref["energy_total"].cpu().numpy()
        return pred, refs, inputs[P.n_atoms].cpu().numpy()

    return predict


def make_forward(model):
    """Inference as a user would run it: eval mode, postprocessing on, energy+forces and dipole."""
    model.do_postprocessing = True

    def forward(batch):
        inputs, _ = batch
        out = model(dict(inputs))
        return out

    return forward


def main(argv=None):
    parser = pc.build_parser(__doc__.splitlines()[0], MODELS, default_lr=5e-4, default_grad_clip=0.0)
    args = parser.parse_args(argv)
    targets = pc.parse_targets(args.targets)
    pc.setup_torch(args)
    device = torch.device(args.device)

    data = pc.read_split(args.split_dir, args)
    stats = pc.fit_train_stats(data["train"])
    # Scale of the Atomwise energy output: the RMS force component (eV/A) when forces are
    # trained (forces are derivatives of the scaled output), else the per-atom energy spread.
    energy_scale = stats.scales["forces"] if "forces" in targets else stats.scales.get("energy", 1.0)
    prepared = {name: prepare(frames, args, stats) for name, frames in data.items()}

    model = build_model(args, targets, stats, energy_scale).to(device)
    n_params = pc.count_parameters(model)
    print(f"schnetpack {args.model}: {n_params} parameters, targets {targets}", flush=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    weights = {t: getattr(args, f"{t}_weight") for t in targets}

    done = pc.train_and_test(args, model, optimizer, prepared, lambda items: collate(items, device),
                             make_step(model, optimizer, targets, stats, weights, args.grad_clip),
                             lambda m: make_predict(m, targets), make_forward, stats.scales, weights, targets,
                             sum(f.n_atoms for f in data["test"]))
    model = done.model

    report = pc.base_report(
        "schnetpack", importlib.metadata.version("schnetpack"), args, targets, data, stats, n_params,
        done.log, done.inference, done.test_mae, done.val_mae,
        settings={
            "representation": type(model.representation).__name__,
            "lmax": args.lmax if args.model == "so3net" else None,
            "n_rbf": N_RBF, "radial_basis": "GaussianRBF", "cutoff_fn": "CosineCutoff",
            "neighbor_list": "MatScipyNeighborList (computed once per structure)",
            "energy": "Atomwise(sum) * ScaleProperty(scale) + AddOffsets(atomrefs); targets via RemoveOffsets",
            "energy_output_scale": energy_scale,
            "charges": "DipoleMoment latent charges (correct_charges=True: sum to 0)",
            "dipole": "DipoleMoment(predict_magnitude=%s, use_vector_representation=%s)"
                      % ("dipole_magnitude" in targets, args.model in ("painn", "so3net")),
            "optimizer": "Adam", **done.recipe.settings(),
            "loss": "sum_t w_t * mean(((pred_t - ref_t) / scale_t)^2); energy per atom, offsets removed",
        },
    )
    report["val_loss"] = done.val_loss
    pc.write_report(args.out, report)


if __name__ == "__main__":
    main()
