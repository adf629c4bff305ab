"""Checkpoints: state_dict, hyperparameters, config and normalisation; never pickled objects.

Below the trainer: prediction (the ASE calculator, ``equiprop predict``) loads models without it.

Loaded with ``torch.load(weights_only=True)``; written to a temporary name and
renamed, so an interruption never leaves a half-written file.
"""

import os
from pathlib import Path

import torch

from equiprop.errors import InputError
from equiprop.models.schnet import SchNet
from equiprop.models.so3net import SO3Net
from equiprop.models.committee import Committee
from equiprop.nn.irreps import coupling_paths

FORMAT = "equiprop-checkpoint-3"
#: Readable older formats and their models. Format 1 SO3Net weights used the feature layout [n, F, M] (not
#: readable); format 2 SO3Net's last interaction had weights for every degree, of which format 3 keeps the
#: ones its readouts use (converted on loading). SchNet is unchanged since format 1.
OLD_FORMATS = {"equiprop-checkpoint-1": {"schnet"}, "equiprop-checkpoint-2": {"schnet", "so3net"}}
#: Checkpoint name of each model class (an explicit table, not a registry).
MODEL_CLASSES = {"schnet": SchNet, "so3net": SO3Net}
#: ``model`` of a committee checkpoint; its ``members`` list holds each member's model, hparams and state_dict.
COMMITTEE = "committee"


def model_name(model) -> str:
    for name, cls in MODEL_CLASSES.items():
        if type(model) is cls:
            return name
    raise TypeError(f"cannot checkpoint {type(model).__name__}")


def save_checkpoint(path, model, config: dict, normalization: dict, training: dict | None = None) -> None:
    """Write ``model`` weights with what is needed to rebuild it and, optionally, resume training."""
    payload = {
        "format": FORMAT,
        "model": model_name(model),
        "hparams": model.hparams,
        "state_dict": model.state_dict(),
        "config": config,
        "normalization": normalization,
        "training": training,
    }
    _write(path, payload)


def save_committee(path, committee: Committee, config: dict, normalization: dict) -> None:
    """Write a committee as one checkpoint (``load_model`` returns a :class:`Committee`)."""
    members = [{"model": model_name(m), "hparams": m.hparams, "state_dict": m.state_dict()} for m in committee.members]
    payload = {"format": FORMAT, "model": COMMITTEE, "members": members, "config": config,
               "normalization": normalization, "training": None}
    _write(path, payload)


def _write(path, payload: dict) -> None:
    """Save under a temporary name, then rename: never a half-written checkpoint."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    """The checkpoint dict; InputError if the file is missing or not an equiprop checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(f"{path}: not a readable checkpoint ({type(error).__name__}: {first_line[:200]})") from None
    if not isinstance(payload, dict) or (payload.get("format") != FORMAT and payload.get("format") not in OLD_FORMATS):
        raise InputError(f"{path}: not an equiprop checkpoint (format {FORMAT!r} expected)")
    if payload["format"] != FORMAT and payload.get("model") not in OLD_FORMATS[payload["format"]]:
        raise InputError(
            f"{path}: {payload.get('model')} checkpoint written by an older equiprop ({payload['format']}) whose "
            f"weight layout this version does not read; retrain it (or use the equiprop that wrote it)"
        )
    if payload["format"] == "equiprop-checkpoint-2" and payload["model"] == "so3net":
        payload["state_dict"] = _trim_last_interaction(payload["hparams"], payload["state_dict"])
        payload["converted_from"] = payload["format"]
    return payload


def _trim_last_interaction(hparams: dict, state: dict) -> dict:
    """Format 2 -> 3 SO3Net weights: keep the last interaction's weights for the degrees it still computes.

    The product keeps its paths into those degrees; linear maps and gates their
    leading degrees. The network computes the same function as before.
    """
    model = SO3Net(**constructor_hparams(hparams))  # for the shapes only (e3nn's constructors do not run on the meta device)
    last = len(model.interactions) - 1
    product = model.interactions[last].product
    full = coupling_paths(product.lmax, product.lmax, product.lmax)
    rows = [full.index(p) for p in coupling_paths(product.lmax, product.lmax, product.lmax_out)]
    leading = {f"interactions.{last}.{name}" for name in TRIMMED_BY_DEGREE}
    trimmed = {}
    for key, target in model.state_dict().items():
        if key not in state:
            continue  # load_state_dict names what is missing
        value = state[key]
        if key == f"interactions.{last}.product.weight":
            value = value[rows]
        elif key in leading and value.shape != target.shape and _covers(value.shape, target.shape):
            value = value[tuple(slice(0, n) for n in target.shape)]
        trimmed[key] = value  # any other mismatch stays, and load_state_dict reports it
    return trimmed


#: Weights of format 2's last SO3Net interaction kept for their leading degrees in format 3 (the product's paths
#: are picked by :func:`equiprop.nn.irreps.coupling_paths`); nothing else is ever cut.
TRIMMED_BY_DEGREE = ("pre_gate.weight", "gate.gates.weight", "gate.gates.bias", "mix.weight")


def _covers(shape, target) -> bool:
    """Same rank, and at least as large as ``target`` along every axis."""
    return len(shape) == len(target) and all(n >= m for n, m in zip(shape, target))


def constructor_hparams(hparams: dict) -> dict:
    """A checkpoint's hparams for the model's constructor: those written before an argument existed get
    the value that reproduces them (``formal_features``, 2026-12-08: formal charges were no feature)."""
    return {"formal_features": False, **hparams}


def model_from_checkpoint(payload: dict, source="checkpoint", device="cpu"):
    """Rebuild the model (a :class:`Committee` for a committee checkpoint) and load its weights; InputError if they do not fit."""
    if payload["model"] == COMMITTEE:
        members = [model_from_checkpoint(m, f"{source} (member {k})", device) for k, m in enumerate(payload["members"])]
        return Committee(members).to(device)
    cls = MODEL_CLASSES.get(payload["model"])
    if cls is None:
        raise InputError(f"{source}: unknown model {payload['model']!r}; known: {sorted(MODEL_CLASSES)}")
    model = cls(**constructor_hparams(payload["hparams"]))
    state = dict(payload["state_dict"])
    # written before the charge references existed (2026-12-07): those models had none, i.e. zero
    state.setdefault("charge_energies", torch.zeros_like(model.charge_energies))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0:2]
        raise InputError(f"{source}: weights do not fit a {payload['model']} model ({' '.join(first)})") from None
    return model.to(device)


def load_model(path, device="cpu"):
    """The trained model stored in checkpoint ``path`` (on ``device``, in eval mode)."""
    return model_from_checkpoint(load_checkpoint(path), str(path), device).eval()
