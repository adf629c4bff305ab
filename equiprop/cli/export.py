"""``equiprop export``: a checkpoint as a file other programs run (equiprop/engines/metatomic.py)."""

from pathlib import Path

from equiprop.errors import InputError, require
from equiprop.models.checkpoint import load_model


def add_commands(commands) -> None:
    parser = commands.add_parser(
        "export", help="write a checkpoint as a TorchScript metatomic model (pip install 'equiprop[metatomic]')",
        description="Writes a metatomic model (https://docs.metatensor.org/metatomic) that metatomic-ase, i-PI "
                    "(<ffdirect><pes>metatomic</pes>) and the metatomic builds of LAMMPS, GROMACS and PLUMED run without "
                    "equiprop: energy (eV; forces and stress by the engine's autograd), 'charge' (e, per atom) and "
                    "'equiprop::dipole' (e*A) when the model predicts them; a committee adds energy_ensemble and "
                    "energy_uncertainty. Neutral systems only; no selected_atoms (equiprop/engines/metatomic.py).")
    parser.add_argument("checkpoint", help="best.pt of an energy model or committee")
    parser.add_argument("output", help="the model file to write, e.g. model.pt")
    parser.add_argument("--format", choices=["metatomic"], default="metatomic")
    parser.add_argument("--overwrite", action="store_true", help="allow replacing the output")
    parser.set_defaults(run=run_export)


def run_export(args) -> int:
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise InputError(f"{output}: exists; pass --overwrite to replace it")
    require("metatomic.torch", "metatomic")
    from equiprop.engines.metatomic import metatomic_model

    model = load_model(args.checkpoint)
    try:
        exported = metatomic_model(model, name=Path(args.checkpoint).resolve().parent.name)
    except ValueError as error:
        raise InputError(f"{args.checkpoint}: {error}") from None
    exported.save(str(output))
    outputs = ", ".join(exported.capabilities().outputs.keys())
    print(f"wrote {output}: metatomic model with outputs {outputs}")
    return 0
