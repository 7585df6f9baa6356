"""`fashiongen nightly`: fold the day's interactions into user vectors, check them, design for changed users
(see fashiongen.pipeline.nightly)."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="recompute a run date that is already published")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.lake.paths import LakePaths
    from fashiongen.pipeline.nightly import run_nightly

    summary = run_nightly(cfg, force=args.force, ray_address=args.ray_address)
    if summary is not None:
        print(summary.to_markdown())
        print(f"\nreport: {LakePaths.of(cfg).report(summary.run_date)}")
    return 0
