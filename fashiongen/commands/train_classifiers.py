"""`fashiongen train-classifiers`: the catalogue's two category classifiers (the realism judge's feature space and the
guard `design.category_guard` climbs), each trained only when missing or trained on another catalogue. The designs
job and `fashiongen design` load them and train nothing."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.training.classifier import train_classifiers

    for role, uri in train_classifiers(cfg).items():
        print(f"{role} category classifier: {uri}")
    return 0
