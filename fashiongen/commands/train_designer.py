"""`fashiongen train-designer`: train the amortised designer for the lake's recommender and generator (used by
design.mode=amortised and amortised+refine); prints its objective on users it never saw beside the prior's."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.training.designer import train_designer_on_lake

    result = train_designer_on_lake(cfg)
    last = result.history[-1]
    print(f"designer: {result.train_users} users trained on, {result.validation_users} held out; "
          f"{len(result.history)} epochs ({last['seconds']:.0f} s the last)")
    print(f"objective on held-out users: designer {result.validation_objective:.3f} vs prior starts "
          f"{result.prior_objective:.3f}")
    print(f"designer: {result.model_uri} (model_version {result.model_version})")
    return 0
