"""GAN recipes on Fashion-MNIST, chosen on validation images, reported on the held-out test images. No Ray (the
recipe is `fashiongen.training.gan_steps`, trained in process), so it runs on a GPU machine as it is.

    python bench/gan_recipes.py [--work /tmp/fashiongen-bench-gan-recipes] [--train-items 10000] [--epochs 6]
        [--recipes paper,ema,hinge,...] [--report validation|test] [--device cpu]

- Training images: a stratified sample of `--train-items` of the 60,000 Fashion-MNIST training images (seed 0).
  Validation: 5,000 other training images (the recipes are chosen on them); test: the 10,000 t10k images (what
  the note reports). Neither is ever trained on.
- Metrics (`fashiongen.evaluation.realism.generator_quality`) in the feature space of a CategoryClassifier trained
  on 20,000 further training images: in-domain numbers, NOT comparable with Inception FID/KID. The floor is real
  vs real (the validation images against the split reported).
- Each recipe is config overrides on the demo's GAN settings (configs/default.yaml), `gan.preset=paper` first for
  the paper; throughput (images/s of training, this process, these threads) is printed beside quality.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from fashiongen.config import load_config
from fashiongen.data.fashion_mnist import load_fashion_mnist
from fashiongen.data.images import encode_png
from fashiongen.evaluation.image_quality import format_table, image_quality
from fashiongen.evaluation.realism import generator_quality
from fashiongen.models.classifier import load_classifier, save_classifier, train_classifier
from fashiongen.training.gan import sample_grid
from fashiongen.training.gan_steps import resolve_settings, train_in_process
from fashiongen.models.contract import sample_latents

TRAIN_POOL = 60_000
VALIDATION_ITEMS = 5_000
CLASSIFIER_ITEMS = 20_000
RECIPES: dict[str, list[str]] = {
    "paper": ["gan.preset=paper"],
    "ema": ["gan.preset=paper", "gan.ema_decay=0.999"],
    "hinge": ["gan.preset=paper", "gan.loss=hinge"],
    "nonsaturating": ["gan.preset=paper", "gan.loss=nonsaturating"],
    "projection": ["gan.preset=paper", "gan.conditioning=projection"],
    "augment": ["gan.preset=paper", "gan.augment=translation,cutout"],
    "translation": ["gan.preset=paper", "gan.augment=translation"],
    "spectral": ["gan.preset=paper", "gan.spectral_norm=true"],
    "ttur": ["gan.preset=paper", "gan.lr_d=0.0004"],
    "acgan": ["gan.preset=paper", "gan.aux_classifier=1"],
    "cbn": ["gan.preset=paper", "gan.conditional_bn=true"],
    "cbn-projection": ["gan.preset=paper", "gan.conditional_bn=true", "gan.conditioning=projection"],
    "ema-hinge": ["gan.preset=paper", "gan.ema_decay=0.999", "gan.loss=hinge"],
    "ema-hinge-projection": ["gan.preset=paper", "gan.ema_decay=0.999", "gan.loss=hinge", "gan.conditioning=projection"],
    "default": [],  # ema-hinge-projection since #13
}


def stratified(categories: np.ndarray, pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    per = count // (categories.max() + 1)
    return np.sort(np.concatenate([rng.choice(pool[categories[pool] == c], per, replace=False)
                                   for c in range(categories.max() + 1)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/fashiongen-bench-gan-recipes")
    parser.add_argument("--train-items", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--recipes", default="paper,ema,hinge,projection,augment,ttur")
    parser.add_argument("--report", choices=("validation", "test"), default="validation")
    parser.add_argument("--per-category", type=int, default=500, help="generated images per category, final table")
    parser.add_argument("--truncations", default="", help="e.g. 0,2,1.5,1,0.5: quality vs diversity of each recipe")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-epoch", action="store_true", help="validation quality after every epoch")
    parser.add_argument("overrides", nargs="*", help="extra overrides applied to every recipe")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    fm = load_fashion_mnist("/usr/share/datasets/fashion-mnist")
    cats = fm.item_category
    rng = np.random.default_rng(0)
    pool = np.arange(TRAIN_POOL)
    train = stratified(cats, pool, args.train_items, rng)
    rest = np.setdiff1d(pool, train)
    validation = stratified(cats, rest, VALIDATION_ITEMS, rng)
    rest = np.setdiff1d(rest, validation)
    test = np.arange(TRAIN_POOL, len(cats))
    clf_uri = str(work / f"classifier-{CLASSIFIER_ITEMS}.pt")
    if not Path(clf_uri).exists():
        pick = np.sort(rng.choice(rest, CLASSIFIER_ITEMS, replace=False))
        save_classifier(train_classifier(fm.images[pick], cats[pick], epochs=2, batch_size=64), clf_uri)
    classifier = load_classifier(clf_uri).to(args.device)
    report = validation if args.report == "validation" else test
    meta = {"image": {"mode": "L", "width": 28, "height": 28}, "categories": list(fm.categories)}
    print(f"# GAN recipes: {len(train)} training images, {args.epochs} epochs, device {args.device}, "
          f"{args.threads} threads; quality vs {len(report)} {args.report} images ({args.per_category}/category)")
    if args.report == "test":
        floor = image_quality(fm.images[validation], cats[validation], fm.images[test], cats[test], classifier,
                              list(fm.categories), kid_subset_size=1000)
        print(format_table(floor, "## real vs real (validation vs test images): the floor"))
    summary = []
    for name in [r.strip() for r in args.recipes.split(",") if r.strip()]:
        overrides = [*RECIPES[name], f"gan.epochs={args.epochs}", *args.overrides]
        cfg = load_config("configs/default.yaml", overrides)
        settings = resolve_settings(cfg.gan, meta)
        curve = []
        measuring = [0.0]  # seconds spent on per-epoch quality, left out of the throughput

        def on_epoch(epoch, stepper, metrics, _curve=curve, _settings=settings, _measuring=measuring):
            row = {"epoch": epoch + 1, **metrics}
            entered = time.perf_counter()
            if args.per_epoch:
                q = generator_quality(stepper.sampler(), classifier, fm.images[validation], cats[validation], 100,
                                      _settings.truncation)
                row.update({k: q["overall"][k] for k in ("fid", "kid", "class_consistency", "diversity_ratio")})
            _curve.append(row)
            _measuring[0] += time.perf_counter() - entered
            print(f"  {name} epoch {epoch + 1}: " + " ".join(f"{k}={v:.4g}" for k, v in row.items()
                                                              if k != "epoch"), flush=True)

        began = time.perf_counter()
        stepper = train_in_process(settings, fm.images[train], cats[train], device=args.device, on_epoch=on_epoch)
        seconds = time.perf_counter() - began - measuring[0]
        images = sum(r["images"] for r in curve)
        model = stepper.sampler().to(args.device)
        model.save(str(work / f"{name}.pt"))  # re-judge later (other splits, truncations) without retraining
        z = sample_latents(8, settings.z_dim, settings.truncation, torch.Generator().manual_seed(0))
        (work / f"{name}.png").write_bytes(encode_png(sample_grid(model, z)))
        for t in [float(t) for t in args.truncations.split(",") if t.strip()] or [settings.truncation]:
            q = generator_quality(model, classifier, fm.images[report], cats[report], args.per_category, t)
            o = q["overall"]
            weakest = min(q["per_category"].items(), key=lambda kv: kv[1]["class_consistency"])
            row = {"recipe": name, "truncation": t, "fid": o["fid"], "kid": o["kid"],
                   "class": o["class_consistency"], "weakest": f"{weakest[0]} {weakest[1]['class_consistency']:.2f}",
                   "diversity": o["diversity_ratio"],
                   "category_diversity": float(np.mean([m["diversity_ratio"] for m in q["per_category"].values()])),
                   "img_per_s": images / seconds, "minutes": seconds / 60}
            summary.append(row)
            print(format_table(q, f"## {name} (truncation {t}): {' '.join(overrides)}"))
            print(json.dumps(row), flush=True)
        (work / f"{name}.json").write_text(json.dumps({"overrides": overrides, "curve": curve,
                                                       "final": [r for r in summary if r["recipe"] == name]}))
    print(f"\n## Summary ({args.report}; in-domain; {args.epochs} epochs of {len(train)} images)\n")
    print("| recipe | truncation | FID | KID | class consistency | weakest category | diversity / real (overall, "
          "mean within category) | img/s | min |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in summary:
        print(f"| {r['recipe']} | {r['truncation']:g} | {r['fid']:.2f} | {r['kid']:.4f} | {r['class']:.3f} | "
              f"{r['weakest']} | {r['diversity']:.0%}, {r['category_diversity']:.0%} | {r['img_per_s']:.0f} | {r['minutes']:.1f} |")


if __name__ == "__main__":
    main()
