"""`fashiongen generate`: design for every (user, category) pair with Ray Data and publish the run to the lake."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="recompute a run date that is already published")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.data.contract import read_meta
    from fashiongen.generation.job import run_generation
    from fashiongen.lake.paths import LakePaths
    from fashiongen.models.contract import require_checkpoint

    read_meta(cfg.data.catalogue_uri)  # missing inputs: say so before loading anything
    for uri in LakePaths.of(cfg).design_models(cfg.recommender.model):
        require_checkpoint(uri)
    summary = run_generation(cfg, force=args.force, ray_address=args.ray_address)
    print(summary.to_markdown())
    return 0
