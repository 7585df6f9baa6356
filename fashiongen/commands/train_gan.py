"""`fashiongen train-gan`: train (or resume) the conditional GAN on the catalogue with Ray Train; prints the last
epoch's quality table per category (in-domain FID/KID, class consistency, diversity against held-out images)."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--catalogue", default=None, help="catalogue URI (default: data.catalogue_uri)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.training.gan import train_gan

    result = train_gan(cfg, args.catalogue, ray_address=args.ray_address)
    m = result.metrics
    print(f"run: {result.run_name} ({result.run_path})")
    started = f"this run started at epoch {m.get('start_epoch', 0) + 1}" if result.trained_now else \
        "all by an earlier run: nothing left to train"
    print(f"epochs trained: {result.epochs} ({started})")
    if "d_loss" in m:
        print(f"last epoch: d_loss={m['d_loss']:.4f} g_loss={m['g_loss']:.4f} images/s={m['images_per_s']:.0f}")
    print(f"samples: {result.samples_uri}")
    if result.quality_table:
        print(result.quality_table)
    print(f"generator: {result.model_uri} (model_version {result.model_version})")
    return 0
