"""Train torch-geometric 2.8.1's DimeNet++ on a split folder; report speed and accuracy as JSON.

Runs in bench/.venvs/pyg (see setup_peers.sh and README.md):

    bench/.venvs/pyg/bin/python bench/peers/run_dimenet.py --split-dir /tmp/split --budget 60 --out dimenet.json

The network is ``torch_geometric.nn.models.DimeNetPlusPlus`` with its own blocks (Bessel radial and
spherical bases, embedding, interaction and output blocks), sized like the other rows: hidden
channels ``--features``, ``--interactions`` blocks, and the paper's ratios for the rest (interaction
embedding features/2, basis embedding 8, output embedding 2*features, 7 spherical and 6 radial
basis functions, envelope exponent 5). ``DimeNetPlusPlus.forward`` builds its graph with
``radius_graph`` (torch-cluster) and its triplets with a ``SparseTensor`` (torch-sparse): neither
has a wheel for torch 2.13 on the package index, and torch-sparse does not build from source here.
So the graph and the triplets are computed once per structure in preparation (ASE's neighbour list
within the cutoff; triplets k->j->i with k != i, in PyG's convention), as every peer here gets
precomputed graphs, and :func:`atomic_outputs` runs the library's blocks in the order of
``DimeNet.forward``, per atom instead of summed per structure.

Outputs per atom (``out_channels`` 2): an energy, scaled by the RMS force as the other rows, summed
with the element reference energies; and a latent charge, shifted so that each structure's charges
sum to its total charge (0 here), whose moment is the dipole (DimeNet++ is invariant: no atomic
dipoles), as schnetpack's SchNet row. Forces are minus the gradient of the energy.
"""

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import torch
from ase.neighborlist import neighbor_list

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402

from torch_geometric.nn.models import DimeNetPlusPlus  # noqa: E402
from torch_geometric.utils import scatter  # noqa: E402

MODELS = ["dimenet++"]
SUPPORTED = ("energy", "forces", "dipole", "charges")


# ----------------------------------------------------------------------------- data


def triplets(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge pairs (k->j, j->i) with k != i, as ``(idx_kj, idx_ji)`` ``[n_triplets]`` each.

    Edges are directed ``source -> target`` (PyG's ``edge_index[0] -> edge_index[1]``, j -> i).
    """
    order = np.argsort(target, kind="stable")  # edges grouped by the atom they point to
    starts = np.searchsorted(target[order], np.arange(max(source.max(initial=-1), target.max(initial=-1)) + 2))
    idx_ji, idx_kj = [], []
    for e, j in enumerate(source):  # every edge into j, for the edge j -> i
        into_j = order[starts[j]:starts[j + 1]]
        into_j = into_j[source[into_j] != target[e]]  # k != i
        idx_kj.append(into_j)
        idx_ji.append(np.full(len(into_j), e))
    if not idx_kj:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(idx_kj).astype(np.int64), np.concatenate(idx_ji).astype(np.int64)


def structure_graph(frame: pc.Frame, cutoff: float, stats: pc.TrainStats) -> dict:
    """One structure's atoms, edges ``[2, E]`` (j -> i), triplets and element reference energy (eV), as numpy."""
    a = frame.atoms
    if a.pbc.any():
        raise SystemExit("run_dimenet.py: periodic structures are not supported (clusters only)")
    first, second = neighbor_list("ij", a, cutoff)  # both directions of every pair
    idx_kj, idx_ji = triplets(second, first)  # edge second -> first: j = second, i = first
    return {"z": a.numbers.astype(np.int64), "pos": a.positions.astype(np.float32),
            "edge_index": np.stack([second, first]).astype(np.int64), "idx_kj": idx_kj, "idx_ji": idx_ji,
            "offset": sum(stats.element_energies[int(z)] for z in a.numbers)}


def collate(items: list[tuple[dict, pc.Frame]], device) -> tuple[dict, dict]:
    """Concatenated graphs (atom and edge indices offset) and the targets (energy without its references)."""
    atoms = np.cumsum([0] + [len(g["z"]) for g, _ in items])
    edges = np.cumsum([0] + [g["edge_index"].shape[1] for g, _ in items])
    batch = {
        "z": np.concatenate([g["z"] for g, _ in items]),
        "pos": np.concatenate([g["pos"] for g, _ in items]),
        "edge_index": np.concatenate([g["edge_index"] + atoms[k] for k, (g, _) in enumerate(items)], axis=1),
        "idx_kj": np.concatenate([g["idx_kj"] + edges[k] for k, (g, _) in enumerate(items)]),
        "idx_ji": np.concatenate([g["idx_ji"] + edges[k] for k, (g, _) in enumerate(items)]),
        "structure": np.repeat(np.arange(len(items)), np.diff(atoms)),
        "n_atoms": np.diff(atoms),
    }
    frames = [f for _, f in items]
    refs = {}
    if frames[0].energy is not None:
        offsets = np.array([g["offset"] for g, _ in items])
        refs["energy"] = np.array([f.energy for f in frames]) - offsets
        refs["energy_total"] = np.array([f.energy for f in frames])
        refs["offsets"] = offsets
    for name in ("forces", "dipole", "charges"):
        if getattr(frames[0], name) is not None:
            refs[name] = np.concatenate([np.reshape(getattr(f, name), (-1, 3) if name != "charges" else -1) for f in frames])
    inputs = {k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in batch.items()}
    targets = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in refs.items()}
    for k in ("energy", "forces", "dipole", "charges"):
        if k in targets:
            targets[k] = targets[k].float()
    return inputs, targets


# ----------------------------------------------------------------------------- model


def build_model(args, n_out: int) -> DimeNetPlusPlus:
    return DimeNetPlusPlus(hidden_channels=args.features, out_channels=n_out, num_blocks=args.interactions,
                           int_emb_size=max(args.features // 2, 1), basis_emb_size=8, out_emb_channels=2 * args.features,
                           num_spherical=7, num_radial=6, cutoff=args.cutoff, envelope_exponent=5)


def atomic_outputs(net: DimeNetPlusPlus, inputs: dict, pos: torch.Tensor) -> torch.Tensor:
    """``[n_atoms, out_channels]``: the blocks of ``DimeNet.forward`` on the precomputed graph, not summed."""
    j, i = inputs["edge_index"]
    idx_kj, idx_ji = inputs["idx_kj"], inputs["idx_ji"]
    idx_i, idx_j, idx_k = i[idx_ji], j[idx_ji], j[idx_kj]
    dist = (pos[i] - pos[j]).pow(2).sum(dim=-1).sqrt()
    pos_jk, pos_ij = pos[idx_j] - pos[idx_k], pos[idx_i] - pos[idx_j]
    angle = torch.atan2(torch.cross(pos_ij, pos_jk, dim=1).norm(dim=-1), (pos_ij * pos_jk).sum(dim=-1))
    rbf, sbf = net.rbf(dist), net.sbf(dist, angle, idx_kj)
    x = net.emb(inputs["z"], rbf, i, j)
    out = net.output_blocks[0](x, rbf, i, num_nodes=pos.size(0))
    for interaction, output in zip(net.interaction_blocks, net.output_blocks[1:]):
        x = interaction(x, rbf, sbf, idx_kj, idx_ji)
        out = out + output(x, rbf, i, num_nodes=pos.size(0))
    return out


class Predictor(torch.nn.Module):
    """DimeNet++ per-atom outputs turned into the targets: energy ``[B]`` (without references), forces
    ``[N, 3]``, charges ``[N]`` (summing to 0 per structure) and their dipole ``[B, 3]``."""

    def __init__(self, net: DimeNetPlusPlus, targets: list[str], energy_scale: float):
        super().__init__()
        self.net, self.targets = net, targets
        self.register_buffer("energy_scale", torch.tensor(float(energy_scale)))

    def forward(self, inputs: dict, create_graph: bool) -> dict:
        forces = "forces" in self.targets
        pos = inputs["pos"].detach().requires_grad_(forces)
        structure, n = inputs["structure"], len(inputs["n_atoms"])
        with torch.set_grad_enabled(forces or torch.is_grad_enabled()):
            out = atomic_outputs(self.net, inputs, pos)
            pred = {}
            if "energy" in self.targets or forces:
                pred["energy"] = scatter(out[:, 0] * self.energy_scale, structure, dim=0, dim_size=n, reduce="sum")
                if forces:
                    (gradient,) = torch.autograd.grad(pred["energy"].sum(), pos, create_graph=create_graph)
                    pred["forces"] = -gradient
            if "charges" in self.targets or "dipole" in self.targets:
                latent = out[:, 1]
                mean = scatter(latent, structure, dim=0, dim_size=n, reduce="mean")
                charges = latent - mean[structure]
                pred["charges"] = charges
                pred["dipole"] = scatter(charges[:, None] * pos, structure, dim=0, dim_size=n, reduce="sum")
        return {t: pred[t] for t in self.targets}


# ----------------------------------------------------------------------------- training and evaluation


def make_step(model, optimizer, stats, weights, grad_clip):
    def step(batch):
        inputs, ref = batch
        model.train()
        optimizer.zero_grad(set_to_none=True)
        pred = model(inputs, create_graph=True)
        loss = pc.normalized_loss(pred, ref, inputs["n_atoms"], stats.scales, weights)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        return len(inputs["n_atoms"]), float(loss.detach())

    return step


def make_predict(model, targets):
    """Eval-mode predictions as numpy; energies are totals (references added in float64)."""
    def predict(batch):
        inputs, ref = batch
        model.eval()
        out = model(inputs, create_graph=False)
        pred = {t: v.detach().cpu().double().numpy() for t, v in out.items()}
        refs = {t: ref[t].cpu().double().numpy() for t in targets}
        if "energy" in targets:
            pred["energy"] = pred["energy"] + ref["offsets"].cpu().numpy()
            refs["energy"] = ref["energy_total"].cpu().numpy()
        return pred, refs, inputs["n_atoms"].cpu().numpy()

    return predict


def main(argv=None):
    parser = pc.build_parser(__doc__.splitlines()[0], MODELS, default_lr=1e-3, default_grad_clip=10.0)
    args = parser.parse_args(argv)
    targets = pc.parse_targets(args.targets, SUPPORTED)
    pc.setup_torch(args)
    device = torch.device(args.device)

    data = pc.read_split(args.split_dir, args)
    stats = pc.fit_train_stats(data["train"])
    energy_scale = stats.scales["forces"] if "forces" in targets else stats.scales.get("energy", 1.0)
    prepared = {name: [(structure_graph(f, args.cutoff, stats), f) for f in frames] for name, frames in data.items()}
    n_out = 2 if {"charges", "dipole"} & set(targets) else 1
    model = Predictor(build_model(args, n_out), targets, energy_scale).to(device)
    n_params = pc.count_parameters(model)
    print(f"torch_geometric DimeNet++: {n_params} parameters, targets {targets}", flush=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    weights = {t: getattr(args, f"{t}_weight") for t in targets}

    done = pc.train_and_test(args, model, optimizer, prepared, lambda items: collate(items, device),
                             make_step(model, optimizer, stats, weights, args.grad_clip),
                             lambda m: make_predict(m, targets), lambda m: lambda b: m(b[0], create_graph=False),
                             stats.scales, weights, targets, sum(f.n_atoms for f in data["test"]))
    report = pc.base_report(
        "torch_geometric", importlib.metadata.version("torch_geometric"), args, targets, data, stats, n_params,
        done.log, done.inference, done.test_mae, done.val_mae,
        settings={
            "representation": "DimeNetPlusPlus(hidden_channels=%d, num_blocks=%d, int_emb_size=%d, basis_emb_size=8, "
                              "out_emb_channels=%d, num_spherical=7, num_radial=6, envelope_exponent=5)"
                              % (args.features, args.interactions, max(args.features // 2, 1), 2 * args.features),
            "neighbor_list": "ase.neighborlist within the cutoff and triplets (k != i), computed once per structure; "
                             "the library's blocks run in DimeNet.forward's order, per atom",
            "energy": "per-atom output 0 * energy_scale, summed, + element energies (least squares)",
            "energy_output_scale": energy_scale,
            "charges": "per-atom output 1, shifted to sum to 0 per structure" if n_out == 2 else None,
            "dipole": "sum_i q_i r_i (invariant model: no atomic dipoles)" if n_out == 2 else None,
            "optimizer": "Adam", **done.recipe.settings(),
            "loss": "sum_t w_t * mean(((pred_t - ref_t) / scale_t)^2); energy per atom, offsets removed",
        },
    )
    report["val_loss"] = done.val_loss
    pc.write_report(args.out, report)


if __name__ == "__main__":
    main()
