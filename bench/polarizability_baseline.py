"""A polarizability model's test error against the additive baseline (each water its mean isotropic polarizability).

``python bench/polarizability_baseline.py RUN_DIR`` (a run trained with the ``polarizability`` target): the
run's own held-out test split, its MAE per tensor component (A^3, as ``equiprop evaluate``), and split into
the isotropic part ``tr(alpha) / 3`` and the anisotropic (traceless) part, beside the baseline fitted on the
run's training split: ``alpha = n_molecules * mean(tr(alpha) / 3 / n_molecules) * I``, which has no anisotropy.
docs/benchmarks.md ("Polarizabilities") quotes the result.
"""

import sys
from pathlib import Path

import numpy as np

import equiprop
from equiprop.data.typemap import TypeMap
from equiprop.models.checkpoint import load_checkpoint, load_model
from equiprop.train.config import TrainConfig
from equiprop.train.prepare import label_keys, prepare_data


def parts(alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic ``[n]`` and traceless ``[n, 3, 3]`` parts of ``alpha`` ``[n, 3, 3]``."""
    isotropic = np.trace(alpha, axis1=1, axis2=2) / 3
    return isotropic, alpha - isotropic[:, None, None] * np.eye(3)


def main() -> None:
    run = Path(sys.argv[1])
    model = load_model(run / "best.pt")
    config = TrainConfig(**load_checkpoint(run / "best.pt")["config"])
    splits = prepare_data(config, TypeMap(tuple(model.hparams["elements"])))
    key = label_keys(config).polarizability
    labels = {name: np.array([a.info[key] for a in part.frames]).reshape(-1, 3, 3)
              for name, part in (("train", splits.train), ("test", splits.test))}
    molecules = {name: np.array([len(a) / 3 for a in part.frames]) for name, part in
                 (("train", splits.train), ("test", splits.test))}
    per_molecule = (parts(labels["train"])[0] / molecules["train"]).mean()
    calculator = equiprop.EquipropCalculator(model)
    predicted = np.array([calculator.get_property("polarizability", a.copy()) for a in splits.test.frames])
    baseline = molecules["test"][:, None, None] * per_molecule * np.eye(3)
    truth = labels["test"]
    print(f"{run}: {len(truth)} test structures, {len(labels['train'])} training; "
          f"training mean {per_molecule:.4f} A^3 per water (isotropic)")
    print(f"  label spread (std over test structures): isotropic {parts(truth)[0].std():.3f} A^3, "
          f"anisotropic components {parts(truth)[1].std():.3f} A^3")
    for name, guess in (("model", predicted), ("additive baseline", baseline)):
        iso, aniso = parts(guess)
        print(f"  {name:18s} MAE per component {np.abs(guess - truth).mean():.4f}  isotropic "
              f"{np.abs(iso - parts(truth)[0]).mean():.4f}  anisotropic {np.abs(aniso - parts(truth)[1]).mean():.4f} A^3")


if __name__ == "__main__":
    main()
