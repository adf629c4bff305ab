"""The real stages behind ``equiprop learn``: committee training and PySCF labelling."""

from equiprop.labelling.run import label_file
from equiprop.labelling.settings import DFTSettings
from equiprop.learn.loop import LearnConfig, learn
from equiprop.models.checkpoint import load_model
from equiprop.train.config import TrainConfig
from equiprop.train.prepare import prepare_data
from equiprop.train.run import train


def train_committee(values: dict, resume: bool, log=print):
    """Train (or finish) the committee run ``values["out"]``; the committee and its test frames."""
    config = TrainConfig(**values)
    train(config, resume=resume, log=log)
    committee = load_model(f"{config.out}/best.pt")
    return committee, prepare_data(config, committee.type_map).test.frames


def label_with_pyscf(settings: DFTSettings, log=print):
    def label(selected, labelled) -> list[int]:
        return label_file(selected, labelled, settings, log=log).skipped

    return label


def run_learn(config: LearnConfig, log=print) -> list[dict]:
    settings = DFTSettings(**config.dft)
    return learn(config, lambda values, resume: train_committee(values, resume, log), label_with_pyscf(settings, log), log)
