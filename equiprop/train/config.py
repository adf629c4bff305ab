"""One dataclass for a training run, loaded from YAML and/or command-line flags.

Fields map one-to-one onto model and trainer arguments; the resolved config is
saved as ``config.yaml`` in the run directory.
"""

import difflib
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import yaml

from equiprop.errors import InputError
from equiprop.keys import Property
from equiprop.models.base import SPREADS
from equiprop.nn.electrostatics import KINDS
from equiprop.nn.irreps import check_sh_lmax


#: The learning rate each model trains best with in 300 s on the shipped water (docs/active-learning.md,
#: "The learning rate"): SO3Net 1e-2 (isomer energies 0.35 against 0.63 kcal/mol at 2e-3, three seeds);
#: SchNet stays at 2e-3 (at 1e-2 it stopped early with 28% worse energies, one 150 s run).
DEFAULT_LR = {"so3net": 1e-2, "schnet": 2e-3}


@dataclass
class TrainConfig:
    """Everything a training run needs (units: Angstrom, eV, e, seconds)."""

    # model
    model: str = "so3net"  # "schnet" or "so3net"
    targets: list[str] = field(default_factory=lambda: ["charges", "dipole", "energy", "forces"])
    elements: list[str] | None = None  # ordered type map; None: elements of the data by atomic number
    cutoff: float = 4.0
    features: int = 32
    interactions: int = 3
    lmax: int = 2  # so3net only
    sh_lmax: int | None = None  # so3net only: spherical harmonics' degree, lmax to 2 lmax; None: lmax
    n_rbf: int = 20
    radial_hidden: int = 64  # so3net only
    avg_neighbors: float | None = None  # so3net only; None: mean neighbour count of the training set
    charge_constraint: bool = True
    charge_spread: str = "auto"  # uniform | learned | formal: how the constraint shares each structure's excess charge (nn/readout.py, nn/charge_transfer.py) | auto: formal when a structure is charged, else uniform (train/prepare.py)
    repulsion: str = ""  # ZBL floor for named pairs closer than a radius, e.g. "O-O:2.3" (nn/repulsion.py); "": none
    electrostatics: str = "auto"  # none | coulomb | multipole (nn/electrostatics.py) | polarizable (nn/induction.py) | auto: for SO3Net with dipole and energy on open-boundary data multipole, polarizable if a structure is charged; else none (train/prepare.py)
    dtype: str = "float32"
    # data
    data: str | None = None  # extxyz file, "water+ions" or "qm9"; None: the shipped PBE0 water clusters
    test_data: str | None = None  # explicit test file; then the data is split into train/val only
    split_file: str | None = None  # JSON {"train": [...], "val": [...], "test": [...]} indices; overrides the fractions
    energy_key: str = "dft_energy"
    dipole_key: str = "dft_dipole"
    dipole_magnitude_key: str = "dipole_magnitude"
    charges_key: str = "dft_hirshfeld"
    forces_key: str = "dft_forces"
    stress_key: str = "dft_stress"  # info, [3, 3] or Voigt [6], eV/A^3 (ASE's sign); cells periodic in x, y, z
    quadrupole_key: str = "dft_quadrupole"  # info, [3, 3] or [9], e*A^2, traceless, about the geometric centre
    polarizability_key: str = "dft_polarizability"  # info, [3, 3] or [9], A^3 (equiprop label --polarizability)
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0  # initial weights and batch order; also the split unless split_seed is set
    split_seed: int | None = None  # seed of the train/val/test split; None: seed
    ensemble: int = 1  # train a committee of this many members (seeds seed, seed+1, ...; one split); max_time bounds all
    # loss: weights of the normalised mean squared errors
    charges_weight: float = 1.0
    dipole_weight: float = 1.0
    dipole_magnitude_weight: float = 1.0
    energy_weight: float = 0.03  # per-atom energy; larger values stall force learning early on (docs/training.md)
    forces_weight: float = 1.0
    stress_weight: float = 1.0
    quadrupole_weight: float = 1.0
    polarizability_weight: float = 1.0
    # optimisation
    batch_size: int = 16
    epochs: int = 100
    max_time: float | None = None  # stop after this many seconds of training
    lr: float | None = None  # None: DEFAULT_LR of the model (config.yaml records the value used)
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"  # plateau (ReduceLROnPlateau) | budget: linear to min_lr over max_time (or epochs)
    lr_factor: float = 0.5  # ReduceLROnPlateau
    lr_patience: int = 5
    min_lr: float = 1e-5  # the plateau schedule stops halving here (without it long runs froze at ~0)
    early_stopping: int = 20  # epochs without validation improvement
    ema_decay: float = 0.99  # 0 disables the moving average
    grad_clip: float = 10.0
    device: str = "cpu"  # cpu, cuda or cuda:N; under torchrun "cuda" is each rank's LOCAL_RANK GPU
    num_workers: int = 0  # DataLoader worker processes building batches (0: in the training process)
    compile: bool = False  # torch.compile the outputs and forces (models/compiled.py): 1.5x on a CPU after compiling
    cuda_graphs: bool | None = None  # replay each step from a CUDA graph (train/cuda_graphs.py); None: on where possible
    out: str = "runs/train"

    def __post_init__(self):
        self.targets = [p.value for p in Property.parse(self.targets)]
        if self.model not in ("schnet", "so3net"):
            raise InputError(f"model must be 'schnet' or 'so3net', got {self.model!r}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.model]
        for name in ("batch_size", "epochs", "features", "interactions", "ensemble"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.model == "so3net" and self.sh_lmax is not None:
            try:  # here, so a bad value fails before the run directory is touched
                check_sh_lmax(self.sh_lmax, self.lmax)
            except ValueError as error:
                raise InputError(str(error)) from None
        if self.repulsion and "energy" not in self.targets:
            raise InputError("repulsion is an energy term: add energy to the targets")
        if self.charge_spread not in ("auto", *SPREADS):
            raise InputError(f"--charge-spread {self.charge_spread!r}: choose auto, {', '.join(SPREADS)}")
        if self.lr_schedule not in ("plateau", "budget"):
            raise InputError(f"--lr-schedule {self.lr_schedule!r}: choose plateau or budget")
        if self.electrostatics not in ("auto", *KINDS):
            raise InputError(f"--electrostatics {self.electrostatics!r}: choose auto, {', '.join(KINDS)}")
        if self.electrostatics in ("multipole", "polarizable") and (self.model != "so3net" or "dipole" not in self.targets):
            raise InputError(f"--electrostatics {self.electrostatics} uses atomic dipoles: it needs --model so3net and the dipole target")
        if self.electrostatics not in ("none", "auto") and "energy" not in self.targets:
            raise InputError("electrostatics is an energy term: add energy to the targets")
        if "stress" in self.targets and self.compile:
            raise InputError("--compile does not give the stress yet; train the stress target without it")
        if self.num_workers < 0:
            raise InputError(f"num_workers must be at least 0, got {self.num_workers}")

    def weight(self, prop: Property) -> float:
        return getattr(self, f"{prop.value}_weight")

    def to_dict(self) -> dict:
        return asdict(self)


def config_fields() -> dict[str, object]:
    """Field name -> default value (``None`` for optional fields)."""
    return {f.name: (f.default_factory() if f.default is MISSING else f.default) for f in fields(TrainConfig)}


def check_keys(keys, origin: str) -> None:
    """InputError for unknown fields, suggesting the closest valid one."""
    valid = list(config_fields())
    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InputError(f"{origin}: unknown config field {key!r}{hint}")


def load_yaml(path) -> dict:
    """Config values from a YAML mapping, fields checked."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such config file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise InputError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(values, dict):
        raise InputError(f"{path}: expected a mapping of config fields")
    check_keys(values, str(path))
    return values


def save_yaml(config: TrainConfig, path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
