"""The README's figures, from a run directory and a table of docs/benchmarks.md.

``python bench/readme_figures.py --run runs/demo [--section "twelfth run"]`` writes
``docs/figures/demo-parity.png`` (the run's parity plots, all targets side by side)
and ``docs/figures/speed-accuracy.png`` (training speed against test force error
of every model in the first table under the first heading of
``docs/benchmarks.md`` that contains ``--section``).
"""

import argparse
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"


def benchmark_rows(text: str, section: str) -> list[dict[str, str]]:
    """The rows of the first markdown table after the first ``## `` heading containing ``section``."""
    start = next(m.end() for m in re.finditer(r"^## .*$", text, flags=re.M) if section in m.group(0))
    lines = [line for line in text[start:].splitlines() if line.startswith("|")]
    head = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != len(head):
            break
        rows.append(dict(zip(head, cells)))
    return rows


def short_name(model: str) -> str:
    """``equiprop SO3Net (l<=1 features, l<=2 harmonics, compiled)`` -> ``SO3Net (l<=1, compiled)``."""
    return model.replace("equiprop ", "").replace("l<=1 features, l<=2 harmonics", "l<=1").replace("EnergyDipolesMACE", "")


def value(cell: str) -> tuple[float, float] | None:
    """``"39.2 ± 1.5"`` -> ``(39.2, 1.5)``; ``"39.2"`` -> ``(39.2, 0.0)``; ``"-"`` or empty -> None."""
    if cell in ("-", ""):
        return None
    mean, _, spread = cell.partition("±")
    return float(mean), float(spread) if spread.strip() else 0.0


def budget_seconds(text: str, section: str) -> str:
    """The ``Each model trained for N s`` of the section, as ``"N s"`` (``"?"`` if it does not say)."""
    start = next(m.end() for m in re.finditer(r"^## .*$", text, flags=re.M) if section in m.group(0))
    found = re.search(r"trained for (\d+) s", text[start:])
    return f"{found.group(1)} s" if found else "?"


def speed_accuracy(rows: list[dict[str, str]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.0), dpi=120)
    for k, row in enumerate(rows):
        speed, error = value(row["train structures/s"]), value(row["forces (meV/A)"])
        if speed is None or error is None:
            continue
        color = "tab:red" if row["model"].startswith("equiprop") else "tab:blue"
        ax.errorbar(speed[0], error[0], xerr=speed[1] or None, yerr=error[1] or None, fmt="o", color=color,
                    markersize=5, capsize=2, elinewidth=0.8)
        ax.annotate(short_name(row["model"]), (speed[0], error[0]), fontsize=6.5,
                    xytext=(5, 4 if k % 2 else -9), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlabel="training structures/s (higher is better)",
           ylabel="test force MAE, meV/A (lower is better)")
    ax.set_title(title, fontsize=8)
    ax.scatter([], [], color="tab:red", label="equiprop")
    ax.scatter([], [], color="tab:blue", label="peers")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_xlim(right=ax.get_xlim()[1] * 2.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(ROOT / "runs" / "demo"), help="a run directory with parity.png ('' keeps docs/figures/demo-parity.png)")
    parser.add_argument("--benchmarks", default=str(ROOT / "docs" / "benchmarks.md"))
    parser.add_argument("--section", default="twelfth run", help="text in the heading of the benchmark table to plot")
    args = parser.parse_args()
    FIGURES.mkdir(parents=True, exist_ok=True)
    if args.run:
        shutil.copy(Path(args.run) / "parity.png", FIGURES / "demo-parity.png")
    text = Path(args.benchmarks).read_text()
    rows = benchmark_rows(text, args.section)
    speed_accuracy(rows, FIGURES / "speed-accuracy.png", f"water clusters, {budget_seconds(text, args.section)} of "
                   f"training each, 2 CPU cores, mean ± std over seeds\n(docs/benchmarks.md: {args.section})")
    wrote = ([FIGURES / "demo-parity.png"] if args.run else []) + [FIGURES / "speed-accuracy.png"]
    print(f"wrote {' and '.join(map(str, wrote))} ({len(rows)} models)")


if __name__ == "__main__":
    main()
