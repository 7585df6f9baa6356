"""`fashiongen train-designer`: train (or resume) the amortised designer with Ray Train for the lake's recommender
and generator (used by design.mode=amortised and amortised+refine); prints its objective on users it never saw
beside the prior's."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.training.designer import train_designer_on_lake

    result = train_designer_on_lake(cfg, ray_address=args.ray_address)
    last = result.history[-1] if result.history else {}
    print(f"run: {result.run_name}; designer: {result.train_users} users trained on, {result.validation_users} "
          f"held out; {len(result.history)} epoch(s) this run" + (f" ({last['seconds']:.0f} s the last)" if last else ""))
    print(f"objective on held-out users: designer {result.validation_objective:.3f} vs prior starts "
          f"{result.prior_objective:.3f}")
    print(f"designer: {result.model_uri} (model_version {result.model_version})")
    return 0
