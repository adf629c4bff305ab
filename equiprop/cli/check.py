"""``equiprop check``: rotation, translation and permutation check of a checkpoint."""

from equiprop.cli.common import add_data_arguments, emit_json, labelled_data, load_for_use


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "check", help="largest deviation under rotations, translations, permutations",
        description="Predict each structure and randomly rotated, translated and permuted copies of it; "
        "report the largest absolute deviation of each output in its own unit (energy per atom, "
        "without the element reference energies; forces; charges; dipole). Exit 1 if one exceeds --tol.")
    add_data_arguments(parser)
    parser.add_argument("--n-structures", type=int, default=20, help="structures to check (default: 20)")
    parser.add_argument("--n-transforms", type=int, default=3, help="random transforms per structure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tol", type=float, help="allowed absolute deviation in each output's unit "
                        "(eV/atom, eV/A, e, e*A; default: 1e-4 float32, 1e-9 float64)")
    parser.set_defaults(run=run_check)


def run_check(args) -> int:
    from equiprop.errors import InputError
    from equiprop.train.symmetry import DEFAULT_TOLERANCE, symmetry_deviations, unit

    model, config = load_for_use(args)
    data, name = labelled_data(args, model, config, targets=[])
    frames = data.frames[: args.n_structures]
    tol = args.tol if args.tol is not None else DEFAULT_TOLERANCE[next(model.parameters()).dtype]
    if tol < 0:
        raise InputError(f"--tol must be >= 0, got {tol}")
    deviations = symmetry_deviations(model, frames, args.n_transforms, args.seed)
    passed = all(d <= tol for d in deviations.values())
    if args.json:
        emit_json({"data": name, "n_structures": len(frames), "tolerance": tol, "max_deviation": deviations,
                   "units": {key: unit(key) for key in deviations}, "passed": passed})
    else:
        for key, d in deviations.items():
            print(f"{key:12s} largest deviation {d:.2e} {unit(key):8s} {'ok' if d <= tol else 'FAILED'} "
                  f"(tolerance {tol:.0e})")
    return 0 if passed else 1
