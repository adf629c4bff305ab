"""``equiprop ipi``: serve a model's energies and forces to a running i-PI (equiprop/engines/ipi.py)."""

import runpy
import shutil
import socket
import sys
import time
from pathlib import Path

from equiprop.errors import InputError, SetupError, require


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "ipi", help="a force client of i-PI: path-integral MD with the model (pip install 'equiprop[ipi]')",
        description="Connects to a running i-PI (i-pi input.xml) and answers its force requests with the model until "
                    "i-PI ends: energy, forces, the virial for periodic cells, and per-bead JSON extras (dipole in "
                    "e*Bohr, charges in e; a committee adds energy_std and forces_std). Start several clients on one "
                    "address to share the beads. Runs i-PI's own socket client (from i-pi-py_driver) with equiprop's potential "
                    "(equiprop/engines/ipi.py; also usable as i-pi-py_driver -m custom -P that file). "
                    "Example input: docs/examples/ipi/.")
    parser.add_argument("checkpoint", help="best.pt of an energy model or committee")
    parser.add_argument("--template", required=True,
                        help="the initial structure i-PI starts from (elements and atom order; its pbc says periodic)")
    parser.add_argument("--address", default="equiprop",
                        help="UNIX socket name, as <address> of i-PI's <ffsocket mode='unix'> (default: equiprop)")
    parser.add_argument("--host", help="connect over TCP to this host (i-PI's <ffsocket mode='inet'>) instead")
    parser.add_argument("--port", type=int, default=31415, help="TCP port, with --host")
    parser.add_argument("--sockets-prefix", default="/tmp/ipi_", help="where i-PI puts UNIX sockets (i-PI's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32, help="structures per forward pass when i-PI batches")
    parser.add_argument("--wait", type=float, default=120.0,
                        help="seconds to wait for i-PI to open the socket (clients may start before i-PI)")
    parser.set_defaults(run=run_ipi)


def ipi_run_driver():
    """i-PI's socket client loop, ``run_driver``, from its ``i-pi-py_driver`` script (i-PI ships it only as a script)."""
    script = shutil.which("i-pi-py_driver") or str(Path(sys.executable).with_name("i-pi-py_driver"))
    if not Path(script).is_file():
        raise SetupError("i-pi-py_driver is not on PATH; install i-PI with: pip install 'equiprop[ipi]'")
    return runpy.run_path(script, run_name="equiprop_ipi")["run_driver"]  # its __main__ block does not run


def wait_for_server(args) -> None:
    """Return once i-PI's socket accepts connections; InputError after ``args.wait`` seconds."""
    deadline = time.monotonic() + args.wait
    while True:
        try:
            if args.host:
                socket.create_connection((args.host, args.port), timeout=1.0).close()
            elif Path(args.sockets_prefix + args.address).is_socket():
                return
            else:
                raise OSError
            return
        except OSError:
            if time.monotonic() > deadline:
                where = f"{args.host}:{args.port}" if args.host else f"{args.sockets_prefix}{args.address}"
                raise InputError(f"no i-PI listening at {where} after {args.wait:g} s (start i-pi input.xml; "
                                 "the address and mode must match its <ffsocket>)") from None
            time.sleep(0.2)


def run_ipi(args) -> int:
    require("ipi", "ipi")
    from equiprop.data.io import read_structures
    from equiprop.engines.ipi import EquipropDriver

    read_structures(args.template)  # a missing or unreadable template fails here, in one line
    try:
        driver = EquipropDriver(args.template, args.checkpoint, args.device, args.batch_size)
    except ValueError as error:
        raise InputError(str(error)) from None
    run_driver = ipi_run_driver()
    where = f"{args.host}:{args.port}" if args.host else f"{args.sockets_prefix}{args.address}"
    print(f"equiprop ipi: waiting for i-PI at {where}", flush=True)
    wait_for_server(args)
    print(f"equiprop ipi: serving {args.checkpoint}", flush=True)
    if args.host:
        run_driver(unix=False, address=args.host, port=args.port, driver=driver)
    else:
        run_driver(unix=True, address=args.address, driver=driver, sockets_prefix=args.sockets_prefix)
    return 0
