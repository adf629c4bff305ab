"""Training-step throughput of SO3Net/SchNet on the shipped data (energy, forces, dipole, charges).

``.venv/bin/python bench/step_speed.py [--model so3net] [--lmax 2] [--sh-lmax L] [--features 32] [--interactions 3]
[--electrostatics multipole]``:
10 batches of 16 structures, one untimed pass, then ``--repeats`` timed passes with and without
forces; prints their median, or with ``--statistic best`` the fastest (this machine's
run-to-run noise is about 15% for a single pass and drifts by up to 30% over minutes: compare
versions by alternating them). ``--edges alternate`` compares paired and unpaired batches in one
process, passes alternated; ``--allocator glibc`` runs with the C library's malloc defaults.
Used for the measurements in docs/performance.md.
"""

import argparse
import statistics
import time
from dataclasses import replace

import torch

import equiprop
from equiprop import datasets
from equiprop.data import collate, frames_to_graphs
from equiprop.models.allocator import keep_freed_memory


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", choices=["so3net", "schnet"], default="so3net")
    p.add_argument("--lmax", type=int, default=2)
    p.add_argument("--sh-lmax", type=int, default=None, help="spherical harmonics' degree (default: --lmax)")
    p.add_argument("--features", type=int, default=32)
    p.add_argument("--interactions", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--electrostatics", choices=["none", "coulomb", "multipole"], default="none",
                   help="the energy's electrostatic term (equiprop train's auto gives multipole for this model)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--statistic", choices=["median", "best"], default="median")
    p.add_argument("--edges", choices=["paired", "unpaired", "alternate"], default="paired",
                   help="unpaired: batches without the edge-pair marking (radial functions for every edge); alternate: "
                        "both in one process, passes alternated (docs/performance.md, step 12)")
    p.add_argument("--allocator", choices=["keep", "glibc"], default="keep",
                   help="keep: equiprop's malloc setting (as in training); glibc: the C library's defaults")
    args = p.parse_args()
    if args.allocator == "keep":
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    common = dict(elements=["H", "O"], cutoff=4.0, features=args.features, interactions=args.interactions,
                  targets=["charges", "dipole", "energy"], electrostatics=args.electrostatics)
    model = equiprop.SO3Net(lmax=args.lmax, sh_lmax=args.sh_lmax, **common) if args.model == "so3net" else equiprop.SchNet(**common)
    frames = datasets.water_pbe0()[:160]
    graphs = frames_to_graphs(frames, model.type_map, model.cutoff)
    paired = [collate(graphs[k : k + 16]).to(dtype=torch.float32) for k in range(0, 160, 16)]
    variants = {"paired": paired, "unpaired": [replace(b, paired_edges=False) for b in paired]}
    if args.edges != "alternate":
        variants = {args.edges: variants[args.edges]}
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()

    def one_pass(batches, forces: bool) -> float:
        start = time.perf_counter()
        for batch in batches:
            out = model(batch, compute_forces=forces)
            loss = sum(out[p].pow(2).mean() for p in out)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return 160 / (time.perf_counter() - start)

    summary = max if args.statistic == "best" else statistics.median
    params = sum(p.numel() for p in model.parameters())
    for forces in (True, False):
        rates = {name: [] for name in variants}
        for batches in variants.values():
            one_pass(batches, forces)  # warm-up
        for k in range(args.repeats):  # alternated, the order flipped every round
            for name, batches in (list(variants.items()) if k % 2 == 0 else reversed(variants.items())):
                rates[name].append(one_pass(batches, forces))
        for name, values in rates.items():
            print(f"{args.model} params {params}, electrostatics {args.electrostatics}, {name} edges, "
                  f"{'with' if forces else 'without'} forces: "
                  f"{summary(values):.0f} structures/s ({args.statistic} of {args.repeats}, allocator {args.allocator})")


if __name__ == "__main__":
    main()
