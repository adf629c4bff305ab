"""DFT labels with PySCF (optional extra ``equiprop[label]``) and cluster geometries."""
