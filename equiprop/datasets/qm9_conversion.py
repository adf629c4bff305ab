"""QM9 from the PyPI package ``qm9pack``, as ``ase.Atoms`` with documented keys and units.

QM9 (Ramakrishnan, Dral, Rupp, von Lilienfeld, Sci. Data 1, 140022 (2014)):
130,831 small organic molecules (H, C, N, O, F; up to 29 atoms) relaxed and
labelled with B3LYP/6-31G(2df,p). ``qm9pack`` (``pip install 'equiprop[qm9]'``)
ships them as CSV inside its wheel; :func:`qm9` converts them once (progress
bar, about a minute) and caches the result as a compressed numpy file.

Keys of each ``Atoms`` (units: eV, e, e*Angstrom, Angstrom):

- ``info["U0"]``, ``info["U"]``, ``info["H"]``, ``info["G"]``: internal
  energy at 0 K and 298.15 K, enthalpy and free energy at 298.15 K (eV).
- ``info["homo"]``, ``info["lumo"]``, ``info["gap"]``, ``info["zpve"]`` (eV).
- ``info["dipole_magnitude"]``: |mu| (e*Angstrom; QM9 gives Debye only, not the vector).
- ``arrays["mulliken_charges"]``: Mulliken charges (e).
- ``info["qm9_index"]`` (1..133,885, the QM9 numbering), ``info["smiles"]``.

Conversions: Hartree and Debye from ``ase.units``.
"""

import csv
import importlib.util
import os
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers
from ase.units import Debye, Hartree
from tqdm import tqdm

from equiprop.errors import InputError, MissingExtraError

#: CSV parts inside the qm9pack wheel, in order.
CSV_PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
#: Bumped whenever the conversion changes, so stale caches are rebuilt.
CACHE_VERSION = 1
#: ``info`` key -> qm9pack column, for values given in Hartree.
HARTREE_COLUMNS = {
    "U0": "InternalEnergy_0K_au", "U": "InternalEnergy_298K_au", "H": "Enthalphy_298K_au",
    "G": "GibbsFreeEnergy_298K_au", "homo": "HOMO_au", "lumo": "LUMO_au", "gap": "HOMO_LUMO_gap_au", "zpve": "ZPVE_au",
}
#: Label keys for training on QM9 (``equiprop train --data qm9`` uses them unless keys are given).
LABEL_KEYS = {"energy_key": "U0", "charges_key": "mulliken_charges", "dipole_magnitude_key": "dipole_magnitude"}


def qm9pack_files() -> list[Path]:
    """The CSV files of the installed qm9pack (located without importing it: its import needs pandas)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError("qm9pack is not installed; install it with: pip install 'equiprop[qm9]'")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    files = [folder / name for name in CSV_PARTS]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise InputError(f"qm9pack is installed but lacks its data files: {', '.join(missing)}")
    return files


def default_cache_dir() -> Path:
    """``$EQUIPROP_CACHE`` or ``$XDG_CACHE_HOME/equiprop`` (``~/.cache/equiprop``)."""
    if os.environ.get("EQUIPROP_CACHE"):
        return Path(os.environ["EQUIPROP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "equiprop"


def qm9(cache_dir=None, indices=None, progress: bool = True) -> list[Atoms]:
    """QM9 as ``ase.Atoms`` (keys in the module docstring); ``indices`` picks molecules by position.

    The first call converts qm9pack's CSV files and writes
    ``<cache_dir>/qm9-v<CACHE_VERSION>.npz``; later calls read that file.
    """
    cache = Path(cache_dir or default_cache_dir()) / f"qm9-v{CACHE_VERSION}.npz"
    if not cache.is_file():
        tables = convert(qm9pack_files(), progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp.npz")
        np.savez_compressed(tmp, **tables)
        os.replace(tmp, cache)  # never a half-written cache
    with np.load(cache, allow_pickle=False) as stored:
        return atoms_from_tables({k: stored[k] for k in stored.files}, indices)


def convert(files, progress: bool = True) -> dict[str, np.ndarray]:
    """Parse qm9pack CSV files into flat arrays (atoms concatenated; ``n_atoms`` per molecule)."""
    numbers, positions, charges, n_atoms, index, smiles = [], [], [], [], [], []
    values = {key: [] for key in [*HARTREE_COLUMNS, "dipole_magnitude"]}
    bar = tqdm(desc="converting QM9 (once)", unit=" molecules", total=130831, disable=not progress)
    for path in files:
        with open(path, newline="") as handle:
            for row_number, row in enumerate(csv.DictReader(handle), start=2):
                molecule = parse_row(row, f"{path}, line {row_number}")
                numbers.append(molecule["numbers"])
                positions.append(molecule["positions"])
                charges.append(molecule["charges"])
                n_atoms.append(len(molecule["numbers"]))
                index.append(molecule["index"])
                smiles.append(molecule["smiles"])
                for key in values:
                    values[key].append(molecule[key])
                bar.update()
    bar.close()
    tables = {
        "numbers": np.concatenate(numbers).astype(np.int8), "positions": np.concatenate(positions),
        "charges": np.concatenate(charges), "n_atoms": np.array(n_atoms, dtype=np.int64),
        "index": np.array(index, dtype=np.int64), "smiles": np.array(smiles),
    }
    tables.update({key: np.array(v, dtype=np.float64) for key, v in values.items()})
    return tables


def parse_row(row: dict, at: str) -> dict:
    """One CSV row -> numbers, positions (Angstrom), Mulliken charges (e) and properties (eV, e*Angstrom)."""
    try:
        symbols = [s.strip().strip("'\"") for s in row["Elements"].strip("[]").split(",")]
        numbers = np.array([atomic_numbers[s] for s in symbols], dtype=np.int64)
        positions = numbers_in(row["XYZ_Ang"]).reshape(-1, 3)
        charges = numbers_in(row["Mulliken_pop"])
        molecule = {"numbers": numbers, "positions": positions, "charges": charges, "index": int(row["Index"]),
                    "smiles": row["SMILES"], "dipole_magnitude": float(row["Dipole_debye"]) * Debye}
        molecule.update({key: float(row[column]) * Hartree for key, column in HARTREE_COLUMNS.items()})
    except (KeyError, ValueError, TypeError) as error:
        raise InputError(f"{at}: cannot parse QM9 row ({type(error).__name__}: {error})") from None
    n = int(row["N_atoms"])
    if positions.shape != (n, 3) or numbers.shape != (n,) or charges.shape != (n,):
        raise InputError(f"{at}: molecule {row['Index']} has N_atoms={n} but {len(numbers)} elements, "
                         f"{positions.shape} coordinates and {charges.shape} charges")
    return molecule


def numbers_in(text: str) -> np.ndarray:
    """Floats of a (nested) list as QM9 writes them: ``[[0.5995,0.,1.],...]``, exponents as ``*^`` (Mathematica)."""
    return np.array([float(v) for v in text.replace("[", " ").replace("]", " ").replace("*^", "e").split(",") if v.strip()],
                    dtype=np.float64)


def atoms_from_tables(tables: dict[str, np.ndarray], indices=None) -> list[Atoms]:
    """``ase.Atoms`` for the molecules at ``indices`` (all by default)."""
    offsets = np.concatenate([[0], np.cumsum(tables["n_atoms"])])
    picked = range(len(tables["n_atoms"])) if indices is None else [int(k) for k in indices]
    frames = []
    for k in picked:
        start, stop = offsets[k], offsets[k + 1]
        atoms = Atoms(numbers=tables["numbers"][start:stop].astype(int), positions=tables["positions"][start:stop])
        atoms.arrays["mulliken_charges"] = tables["charges"][start:stop].copy()
        atoms.info.update({key: float(tables[key][k]) for key in [*HARTREE_COLUMNS, "dipole_magnitude"]})
        atoms.info["qm9_index"], atoms.info["smiles"] = int(tables["index"][k]), str(tables["smiles"][k])
        frames.append(atoms)
    return frames
