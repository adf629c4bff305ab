"""``equiprop check``: rotation, translation and permutation check of a checkpoint."""

from equiprop.cli.common import add_data_arguments, emit_json, labelled_data, load_for_use


def add_commands(commands) -> None:
    parser = commands.add_parser("check", help="largest deviation under rotations, translations, permutations")
    add_data_arguments(parser)
    parser.add_argument("--n-structures", type=int, default=20, help="structures to check (default: 20)")
    parser.add_argument("--n-transforms", type=int, default=3, help="random transforms per structure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, help="allowed relative deviation (default: 1e-4 float32, 1e-9 float64)")
    parser.set_defaults(run=run_check)


def run_check(args) -> int:
    import torch

    from equiprop.train.symmetry import symmetry_deviations

    model, config = load_for_use(args)
    data, name = labelled_data(args, model, config, targets=[])
    frames = data.frames[: args.n_structures]
    tol = args.tol or (1e-9 if next(model.parameters()).dtype == torch.float64 else 1e-4)
    deviations = symmetry_deviations(model, frames, args.n_transforms, args.seed)
    passed = all(d <= tol for d in deviations.values())
    if args.json:
        emit_json({"data": name, "n_structures": len(frames), "tolerance": tol, "max_deviation": deviations, "passed": passed})
    else:
        for key, d in deviations.items():
            print(f"{key:8s} largest relative deviation {d:.2e} {'ok' if d <= tol else 'FAILED'} (tolerance {tol:.0e})")
    return 0 if passed else 1
