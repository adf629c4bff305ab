"""equiprop models inside MD engines: i-PI (``ipi.py``). Above ``models``, beside the ASE calculator."""
