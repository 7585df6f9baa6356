"""`fashiongen train-gan`: train (or resume) the conditional LSGAN on the catalogue with Ray Train."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalogue", default=None, help="catalogue URI (default: data.catalogue_uri)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: start or join a local Ray)")


def run(cfg, args) -> int:
    import ray

    from fashiongen.data.contract import read_meta
    from fashiongen.training.gan import train_gan

    read_meta(args.catalogue or cfg.data.catalogue_uri)  # no catalogue: say so before starting Ray
    if not ray.is_initialized():
        ray.init(address=args.ray_address, include_dashboard=False)
    result = train_gan(cfg, args.catalogue)
    m = result.metrics
    print(f"run: {result.run_name} ({result.run_path})")
    print(f"epochs trained: {result.epochs} (this run started at epoch {m.get('start_epoch', 0) + 1})")
    if "d_loss" in m:
        print(f"last epoch: d_loss={m['d_loss']:.4f} g_loss={m['g_loss']:.4f} images/s={m['images_per_s']:.0f}")
    print(f"samples: {result.samples_uri}")
    print(f"generator: {result.model_uri} (model_version {result.model_version})")
    return 0
