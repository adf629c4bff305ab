"""The far water's Hirshfeld charge next to OH-, with def2-SVP (the shipped method) and with diffuse def2-SVPD.

``python bench/apart_leak_basis.py [INDEX ...]`` (default 52 70: the two apart frames whose far water holds the
most charge in the shipped labels): indices into the ``sample == "apart"`` frames of
``equiprop.datasets.water_pbe0_ions()``; the far water is the last three atoms. Two PBE0 labels per frame
(7-330 s each on 2 cores). equiprop/datasets/README.md and data/ions-apart/README.md quote the result.
"""

import sys
import time

import numpy as np

from equiprop import datasets
from equiprop.labelling.pyscf_labels import compute_labels
from equiprop.labelling.settings import DFTSettings


def main() -> None:
    indices = [int(i) for i in sys.argv[1:]] or [52, 70]
    apart = [a for a in datasets.water_pbe0_ions() if a.info["sample"] == "apart"]
    for index in indices:
        atoms = apart[index]
        print(f"apart frame {index}: shipped label {atoms.arrays['dft_hirshfeld'][-3:].sum():+.4f} e")
        for basis in ("def2-svp", "def2-svpd"):
            start = time.perf_counter()
            labels = compute_labels(atoms, DFTSettings(basis=basis))
            far = float(np.asarray(labels.charges)[-3:].sum())
            print(f"  {basis:10s} far water {far:+.4f} e  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
