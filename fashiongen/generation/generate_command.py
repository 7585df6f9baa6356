"""`fashiongen generate`: design for every (user, category) pair with Ray Data and publish the run to the lake."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="recompute a run date that is already published")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def run(cfg, args) -> int:
    from fashiongen.config import design_model_uris
    from fashiongen.data.contract import read_meta
    from fashiongen.generation.job import run_generation
    from fashiongen.models.contract import require_checkpoint
    from fashiongen.runtime import ensure_ray

    read_meta(cfg.data.catalogue_uri)  # missing inputs: say so before starting Ray
    for uri in design_model_uris(cfg):
        require_checkpoint(uri)
    ensure_ray(args.ray_address)
    summary = run_generation(cfg, force=args.force)
    print(summary.to_markdown())
    return 0
