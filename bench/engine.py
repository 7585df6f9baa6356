"""Preference-maximisation throughput: the batched engine against the official procedure, same models, one process.

    python bench/engine.py [--pairs 16] [--batch-pairs 4,16] [--bf16] [--recommender URI] [--generator URI] [--classifier URI] [--threads 1]

- Official procedure (kang205/DVBPR PM/main.py, ported): one (user, category) at a time, 16 restarts
  z0 ~ N(0, 0.5²), Adam(0.05) for 10 steps on mean_R(θ_u·Φ(G)) − mean_R((D − 1)²), fp32, then a final forward.
- Engine: `PreferenceEngine.optimise` at the same settings (`DesignConfig.official()`) with `batch_pairs` pairs per
  batch, plus the catalogue top-k and lift it always computes; then the default recipe (`DesignConfig()`, what
  `fashiongen generate` runs; its guard classifier randomly initialised: weights do not change the speed).
- Models: the checkpoints given, else randomly initialised small models at Fashion-MNIST shape (1x28x28, 10
  categories, 500 users, 2000 items): the "small" ConditionalGAN (z 64) and the "small" DVBPR (K=50).
  Weights do not change the speed.
- With --classifier (a `save_classifier` checkpoint) and a trained generator, also the image quality
  (fashiongen.evaluation.image_quality) of the optimised designs against plain GAN samples of the same categories,
  both against held-out Fashion-MNIST t10k images.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from fashiongen.config import DesignConfig
from fashiongen.generation.engine import DesignObjective, PreferenceEngine, image_adapter
from fashiongen.models.classifier import CategoryClassifier
from fashiongen.models.contract import load_generator, load_recommender
from fashiongen.models.dvbpr import DVBPR
from fashiongen.models.gan import ConditionalGAN

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
CATEGORIES = [f"c{k}" for k in range(10)]


def official_procedure(objective: DesignObjective, users: np.ndarray, cats: np.ndarray,
                       settings: DesignConfig, seed: int = 0) -> list[torch.Tensor]:
    """PM/main.py for each pair in turn: 16 restarts, mean objective, Adam(0.05) x 10 steps, fp32; final images."""
    gen = torch.Generator().manual_seed(seed)
    generator, recommender = objective.generator, objective.recommender
    adapt = image_adapter(tuple(generator.image_shape), tuple(getattr(recommender, "image_shape", generator.image_shape)))
    finals = []
    for user, cat in zip(users, cats):
        theta = objective.theta[int(user)]
        c = torch.full((settings.restarts,), int(cat))
        z = (torch.randn(settings.restarts, generator.latent_dim, generator=gen) * settings.init_std).requires_grad_(True)
        optimiser = torch.optim.Adam([z], lr=settings.lr)
        for _ in range(settings.steps):
            images = generator.generate(z, c)
            score = recommender.encode_images(adapt(images)) @ theta
            obj = score.mean() - settings.eta * ((generator.discriminate(images, c) - 1) ** 2).mean()
            optimiser.zero_grad()
            (-obj).backward()
            optimiser.step()
        with torch.no_grad():
            finals.append(generator.generate(z, c))
    return finals


def timed(fn) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def image_quality_section(engine: PreferenceEngine, generator, classifier_uri: str, users, cats, run_date) -> None:
    from fashiongen.data.fashion_mnist import load_fashion_mnist
    from fashiongen.evaluation.image_quality import format_table, image_quality
    from fashiongen.models.classifier import load_classifier

    classifier = load_classifier(classifier_uri)
    real = load_fashion_mnist(FASHION_MNIST)
    held_out = slice(60000, 70000)  # t10k
    ids = [f"q{i}" for i in range(len(users))]
    designs = engine.optimise(ids, users, cats, run_date).designs
    gen = torch.Generator().manual_seed(1)
    plain_cats = torch.from_numpy(designs["category_idx"])
    with torch.no_grad():
        plain = generator.generate(torch.randn(len(plain_cats), generator.latent_dim, generator=gen), plain_cats)
    for title, images in (("optimised designs (top-k per pair)", designs["image"]), ("plain GAN samples", plain)):
        table = image_quality(real.images[held_out], real.item_category[held_out], images, designs["category_idx"],
                              classifier, real.categories, kid_subset_size=200)
        print(format_table(table, title=f"image quality: {title} vs held-out t10k"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--batch-pairs", default="16", help="engine batch sizes to time (pairs per batch)")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--recommender", default="", help="recommender checkpoint URI (default: stand-in)")
    parser.add_argument("--generator", default="", help="generator checkpoint URI (default: random small LSGAN)")
    parser.add_argument("--classifier", default="", help="classifier checkpoint URI: also report image quality")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast (slow on most CPUs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (more thrash on a shared 2-core box)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    generator = load_generator(args.generator) if args.generator else \
        ConditionalGAN("small", 64, CATEGORIES, (1, 28, 28)).eval()
    recommender = load_recommender(args.recommender) if args.recommender else \
        DVBPR(k=50, arch="small").build(args.users, 2000, (1, 28, 28))
    n_items, n_users = len(recommender.item_features()), len(recommender.user_vectors())
    n_cat = len(generator.categories)
    item_category = np.arange(n_items) % n_cat
    rng = np.random.default_rng(0)
    users, cats = rng.integers(0, n_users, args.pairs), rng.integers(0, n_cat, args.pairs)
    settings = DesignConfig.official()
    print(f"models: generator {'checkpoint ' + args.generator if args.generator else 'small LSGAN, random init'}; "
          f"recommender {'checkpoint ' + args.recommender if args.recommender else 'small DVBPR, random init'}")
    print(f"settings: R={settings.restarts} T={settings.steps} lr={settings.lr} eta={settings.eta}; {args.pairs} pairs; "
          f"torch threads {args.threads}; cpu")
    print(f"\n{'procedure':<42} {'seconds':>8} {'pairs/s':>8} {'vs official':>11}", flush=True)
    objective = DesignObjective(recommender, generator, settings)
    official_s, _ = timed(lambda: official_procedure(objective, users, cats, settings))

    def report(name: str, seconds: float) -> None:
        print(f"{name:<42} {seconds:>8.2f} {args.pairs / seconds:>8.2f} {official_s / seconds:>10.2f}x", flush=True)

    report("official: one pair at a time, fp32", official_s)
    run_date = "2024-05-01"
    for batch in [int(b) for b in args.batch_pairs.split(",")]:
        for mixed in (False, True) if args.bf16 else (False,):
            s = DesignConfig.official(batch_pairs=batch, mixed_precision=mixed)
            engine = PreferenceEngine(recommender, generator, s, item_category)
            engine.optimise(["warm"], users[:1], cats[:1], run_date)
            seconds, _ = timed(lambda: engine.optimise([f"p{i}" for i in range(args.pairs)], users, cats, run_date))
            report(f"engine: batch_pairs={batch}, {'bf16 autocast' if mixed else 'fp32'}", seconds)
    recipe = DesignConfig()  # the default recipe: what `fashiongen generate` runs
    guard = CategoryClassifier(generator.image_shape[0], n_cat, generator.image_shape[1]).eval()
    engine = PreferenceEngine(recommender, generator, recipe, item_category, guard=guard, guard_class=np.arange(n_cat),
                              item_images=np.zeros((n_items, *generator.image_shape[1:], generator.image_shape[0]),
                                                   np.uint8))
    seconds, _ = timed(lambda: engine.optimise([f"p{i}" for i in range(args.pairs)], users, cats, run_date))
    report(f"engine: default recipe (T={recipe.steps}, guard {recipe.category_guard:g})", seconds)
    if args.classifier:
        image_quality_section(PreferenceEngine(recommender, generator, settings, item_category), generator,
                              args.classifier, users, cats, run_date)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
