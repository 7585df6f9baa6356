"""`fashiongen train-recommender`: train (or resume) recommender.model on the catalogue (DVBPR with Ray Train)."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalogue", default=None, help="catalogue URI (default: data.catalogue_uri)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.training.recommender import train_recommender

    result = train_recommender(cfg, args.catalogue, ray_address=args.ray_address)
    last = result.history[-1] if result.history else {}
    if result.run_name:
        print(f"run: {result.run_name} ({result.run_path})")
    trained = f"trained in {result.train_seconds:.1f}s" if result.trained_now else "trained by an earlier run"
    print(f"{result.kind}: {result.epochs} epoch(s) {trained}; last epoch "
          f"loss={last.get('loss', float('nan')):.4f} val_auc_sampled={last.get('val_auc_sampled', float('nan')):.4f}")
    print(f"model: {result.model_uri} (model_version {result.model_version})")
    return 0
