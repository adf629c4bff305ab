"""Label a structure file frame by frame, resuming an interrupted run."""

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import ase.io
import numpy as np
from ase import Atoms
from tqdm import tqdm

from equiprop.data.io import read_structures
from equiprop.data.labels import LabelKeys
from equiprop.errors import InputError
from equiprop.labelling.pyscf_labels import DFTLabels, check_device, check_molecule, compute_labels
from equiprop.labelling.settings import DFTSettings

#: ``info`` key recording which input frame an output frame was computed from.
SOURCE_INDEX_KEY = "source_index"
#: ``info`` key of the traceless quadrupole (9 numbers, row-major 3x3, e*Angstrom^2, about the geometric centre).
QUADRUPOLE_KEY = "dft_quadrupole"
#: ``info`` key of the static polarizability (9 numbers, row-major 3x3, Angstrom^3), with ``equiprop label --polarizability``.
POLARIZABILITY_KEY = "dft_polarizability"


@dataclass
class LabelReport:
    """What a labelling run did."""

    written: list[int] = field(default_factory=list)  # input indices labelled in this run
    resumed: int = 0  # frames already in the output before this run
    skipped: list[int] = field(default_factory=list)  # input indices whose SCF did not converge


def labelled_frame(atoms: Atoms, labels: DFTLabels, index: int, settings: DFTSettings, keys: LabelKeys) -> Atoms:
    """A copy of ``atoms`` keeping its keys, with the labels added under ``keys``."""
    frame = atoms.copy()
    frame.calc = None
    frame.info.update({keys.energy: labels.energy, keys.dipole: labels.dipole, "method": settings.describe(), SOURCE_INDEX_KEY: index})
    if labels.quadrupole is not None:
        frame.info[QUADRUPOLE_KEY] = np.asarray(labels.quadrupole).reshape(9)  # row-major 3x3
    if labels.polarizability is not None:
        frame.info[POLARIZABILITY_KEY] = np.asarray(labels.polarizability).reshape(9)
    frame.arrays[keys.forces] = labels.forces
    frame.arrays[keys.charges] = labels.charges
    return frame


def label_file(
    input_path,
    output_path,
    settings: DFTSettings = DFTSettings(),
    keys: LabelKeys = LabelKeys(),
    overwrite: bool = False,
    compute: Callable = compute_labels,
    log: Callable[[str], None] = print,
) -> LabelReport:
    """Label every frame of ``input_path`` into ``output_path`` (extxyz), one appended frame at a time.

    An existing output is resumed (its frames must come from this input); with
    ``overwrite`` it is replaced. Frames whose SCF does not converge are
    reported and left out. A periodic frame is an error (the labeller computes molecules).
    """
    input_path, output_path = Path(input_path), Path(output_path)
    if compute is compute_labels:
        check_device(settings)  # before anything is read or written
    frames = read_structures(input_path)
    for k, atoms in enumerate(frames):  # before anything is written
        check_molecule(atoms, k, str(input_path))
    if output_path.resolve() == input_path.resolve():
        raise InputError(f"{output_path}: the output would overwrite the input; choose another file")
    if output_path.exists() and overwrite:
        log(f"{output_path}: exists; replacing it (--overwrite)")
        output_path.unlink()
    report = LabelReport()
    done = finished_indices(output_path, frames, input_path, log)
    report.resumed = len(done)
    if done:
        log(f"{output_path}: resuming, {len(done)} of {len(frames)} frames already labelled")
    with tqdm(total=len(frames), initial=len(done), unit="structure", desc="label") as bar:
        for k, atoms in enumerate(frames):
            if k in done:
                continue
            labels = compute(atoms, settings, k, str(input_path))
            if labels is None:
                report.skipped.append(k)
                log(f"structure {k} of {input_path}: SCF did not converge; skipped (not written)")
            else:
                append_frame(output_path, labelled_frame(atoms, labels, k, settings, keys))
                report.written.append(k)
                bar.set_postfix_str(f"{labels.seconds:.1f} s/structure")
            bar.update()
    return report


def append_frame(path: Path, frame: Atoms) -> None:
    """Append one complete frame and flush it to disk."""
    text = io.StringIO()
    ase.io.write(text, frame, format="extxyz")
    with open(path, "a") as handle:
        handle.write(text.getvalue())
        handle.flush()
        os.fsync(handle.fileno())


def finished_indices(output_path: Path, frames: list[Atoms], input_path: Path, log) -> set[int]:
    """Input indices already labelled in ``output_path``; drops an incomplete last frame."""
    if not output_path.exists():
        return set()
    _drop_incomplete_tail(output_path, log)
    if output_path.stat().st_size == 0:
        return set()
    done = set()
    for m, frame in enumerate(read_structures(output_path)):
        k = frame.info.get(SOURCE_INDEX_KEY)
        source = frames[k] if isinstance(k, (int, np.integer)) and 0 <= k < len(frames) else None
        if source is None or len(source) != len(frame) or not (
            np.array_equal(source.numbers, frame.numbers) and np.allclose(source.positions, frame.positions, atol=1e-6)
        ):
            raise InputError(
                f"{output_path}: frame {m} was not labelled from structure {k} of {input_path}; "
                "choose another output file or pass --overwrite"
            )
        done.add(int(k))
    return done


def _drop_incomplete_tail(path: Path, log) -> None:
    """Cut an interrupted last frame (fewer lines than its atom count promises).

    Anything else that does not parse as extxyz frames is an error, so a file
    that is not ours is never cut.
    """
    lines = path.read_text().splitlines(keepends=True)
    position = 0
    while position < len(lines):
        try:
            end = position + int(lines[position].strip()) + 2
        except ValueError:
            raise InputError(
                f"{path}: line {position + 1} does not start an extxyz frame; this is not a file written "
                "by 'equiprop label'; choose another output file or pass --overwrite"
            ) from None
        if end > len(lines) or not lines[end - 1].endswith("\n"):
            log(f"{path}: dropping an incomplete last frame (an interrupted write); finished frames are kept")
            path.write_text("".join(lines[:position]))
            return
        position = end
