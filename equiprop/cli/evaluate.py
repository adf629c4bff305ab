"""``equiprop evaluate``: MAE/RMSE per target and parity plots."""

import json
import sys
from pathlib import Path

from equiprop.cli.common import add_data_arguments, emit_json, labelled_data, load_for_use, output_dir
from equiprop.keys import Property


def add_commands(commands) -> None:
    parser = commands.add_parser("evaluate", help="errors per target and parity plots of a checkpoint")
    add_data_arguments(parser)
    parser.add_argument("--out", help="folder for metrics.json and plots (default: next to the checkpoint)")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args) -> int:
    from equiprop.models.committee import Committee
    from equiprop.train.ensemble import calibration
    from equiprop.train.evaluate import evaluate
    from equiprop.train.prepare import label_keys
    from equiprop.train.plots import parity_plots
    from equiprop.train.run import summary_table

    model, config = load_for_use(args)
    targets = [p for p in Property if p.value in config.targets]
    data, name = labelled_data(args, model, config, targets)
    result = evaluate(model, data, args.batch_size)
    stem = Path(args.data).name.split(".")[0] if args.data else "test"
    out = output_dir(args.out, Path(args.checkpoint).parent / f"evaluate_{stem}")
    if (out / "metrics.json").exists():
        print(f"{out}: replacing the previous evaluation", file=sys.stderr)
    metrics = dict(result.metrics)
    if isinstance(model, Committee) and Property.FORCES in data.labels:
        forces_key = args.forces_key or label_keys(config).forces
        metrics["calibration"] = calibration(model, data.frames, forces_key, args.batch_size)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plots = parity_plots(result.parity, result.metrics, out)
    if args.json:
        emit_json({"data": name, "n_structures": len(data), "metrics": metrics, "plots": [str(p) for p in plots]})
    else:
        print(summary_table(result.metrics, len(data)).replace("held-out test set", name))
        if "calibration" in metrics:
            c = metrics["calibration"]
            print(f"committee: Spearman {c['spearman_forces']:.2f} between per-structure force spread and force error "
                  f"(mean spread {1000 * c['mean_forces_std']:.1f}, mean RMSE {1000 * c['mean_forces_rmse']:.1f} meV/A)")
        print(f"parity plots: {', '.join(str(p) for p in plots)}")
    return 0
