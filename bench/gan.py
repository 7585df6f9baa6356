"""GAN benchmark on Fashion-MNIST: training throughput (1 and 2 Ray workers) and sample quality after the
default training budget, against held-out real images.

    python bench/gan.py [--work /tmp/fashiongen-bench-gan] [--epochs 0] [--workers 2] [gan.ema_decay=0.999 ...]

- Catalogue: the 60,000 Fashion-MNIST training images (the GAN reads only items; one placeholder user makes the
  catalogue valid). Held out: the 10,000 t10k images, never seen by the GAN.
- Metrics (fashiongen.evaluation.image_quality) in the feature space of a CategoryClassifier trained here on
  a stratified subset of the training images: in-domain numbers, NOT comparable with Inception FID/KID.
  The floor is the same metrics between two disjoint halves of the held-out set (real vs real).
- When the run kept an EMA copy of G, both G and the EMA copy of the last checkpoint are scored.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from fashiongen.config import load_config
from fashiongen.data.contract import write_catalogue
from fashiongen.data.fashion_mnist import ImageSet, items_table, load_fashion_mnist
from fashiongen.evaluation.image_quality import format_table, image_quality
from fashiongen.models.classifier import load_classifier, save_classifier, train_classifier
from fashiongen.models.contract import load_generator, read_checkpoint
from fashiongen.models.gan import ConditionalGAN
from fashiongen.training.ray_train import STATE_FILE

TRAIN_IMAGES = 60_000
CLASSIFIER_EPOCHS = 2
CLASSIFIER_BATCH = 64


def write_bench_catalogue(uri: str, images: ImageSet) -> None:
    if Path(uri, "catalogue.json").exists():
        return
    ids = images.item_ids[:3].astype(str).tolist()
    inter = pa.table({"user_id": ["bench"] * 3, "item_id": ids,
                      "ts": pa.array(np.arange(3, dtype="int64"), pa.timestamp("ms", tz="UTC"))})
    write_catalogue(uri, items_table(images), inter, {"source": "fashion_mnist", "simulated": False},
                    categories=images.categories)


def subset(images: ImageSet, keep: np.ndarray) -> ImageSet:
    return ImageSet(images.item_ids[keep], images.images[keep], images.item_category[keep], images.categories)


@torch.no_grad()
def generate(model: ConditionalGAN, categories: np.ndarray, seed: int = 0) -> torch.Tensor:
    z = torch.randn(len(categories), model.latent_dim, generator=torch.Generator().manual_seed(seed))
    return torch.cat([model.generate(z[s:s + 1000], torch.as_tensor(categories[s:s + 1000]))
                      for s in range(0, len(categories), 1000)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/fashiongen-bench-gan")
    parser.add_argument("--epochs", type=int, default=0, help="0 = the architecture's default budget")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--throughput-items", type=int, default=4000)
    parser.add_argument("--classifier-items", type=int, default=20_000)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--eval-per-category", type=int, default=500)
    parser.add_argument("overrides", nargs="*", help="config overrides for the quality run, e.g. gan.ema_decay=0.999")
    args = parser.parse_args()
    import ray

    from fashiongen.training.gan import train_gan

    work = Path(args.work)
    torch.set_num_threads(2)
    fm = load_fashion_mnist("/usr/share/datasets/fashion-mnist")
    train_set, held_out = subset(fm, np.arange(TRAIN_IMAGES)), subset(fm, np.arange(TRAIN_IMAGES, len(fm.item_ids)))
    catalogue = str(work / "catalogue")
    write_bench_catalogue(catalogue, train_set)
    small = str(work / "catalogue-small")
    write_bench_catalogue(small, subset(train_set, np.arange(args.throughput_items)))

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=True,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    if not args.skip_throughput:
        print(f"# GAN training throughput (small arch, batch 64/worker, {args.throughput_items} images, 2 epochs, "
              f"{os.cpu_count()} CPU cores)")
        for workers in (1, 2):
            cfg = load_config(None, [f"lake_uri={work / 'lake-throughput'}", f"train.storage_path={work / 'train'}",
                                     f"train.num_workers={workers}", "gan.epochs=2",
                                     f"train.run_name=throughput-{workers}-{time.time_ns()}"])
            result = train_gan(cfg, small)
            print(f"workers={workers}  images/s (2nd epoch) = {result.metrics['images_per_s']:.0f}")

    clf_uri = str(work / f"classifier-{args.classifier_items}-b{CLASSIFIER_BATCH}-e{CLASSIFIER_EPOCHS}.pt")
    if not Path(clf_uri).exists():
        pick = np.random.default_rng(0).choice(TRAIN_IMAGES, args.classifier_items, replace=False)
        began = time.perf_counter()
        save_classifier(train_classifier(train_set.images[pick], train_set.item_category[pick],
                                         epochs=CLASSIFIER_EPOCHS, batch_size=CLASSIFIER_BATCH), clf_uri)
        print(f"classifier trained on {args.classifier_items} images in {time.perf_counter() - began:.0f}s")
    classifier = load_classifier(clf_uri)

    overrides = [f"lake_uri={work / 'lake'}", f"train.storage_path={work / 'train'}",
                 f"train.num_workers={args.workers}", f"gan.epochs={args.epochs}", *args.overrides]
    cfg = load_config(None, overrides)
    began = time.perf_counter()
    result = train_gan(cfg, catalogue)
    minutes = (time.perf_counter() - began) / 60
    print(f"\n# Quality run: {' '.join(overrides)}\n{result.epochs} epochs of {TRAIN_IMAGES} images; this call took "
          f"{minutes:.1f} min wall ({args.workers} workers; includes Ray start and data loading; a rerun of a finished "
          "run only reloads it)")
    if "d_loss" in result.metrics:
        print(f"last epoch: d_loss={result.metrics['d_loss']:.4f} g_loss={result.metrics['g_loss']:.4f} "
              f"images/s={result.metrics['images_per_s']:.0f}")

    n = args.eval_per_category
    rng = np.random.default_rng(1)
    order = rng.permutation(len(held_out.item_ids))
    half_a, half_b = order[: len(order) // 2], order[len(order) // 2:]
    real_c = held_out.item_category[half_a]
    fake_c = np.repeat(np.arange(len(fm.categories)), n)
    names = fm.categories
    floor = image_quality(held_out.images[half_a], real_c, held_out.images[half_b], held_out.item_category[half_b],
                          classifier, names)
    print("\n" + format_table(floor, "## real vs real (held-out halves, 5000 vs 5000): the floor"))
    saved = load_generator(result.model_uri)  # checks the contract file loads
    checkpoints = sorted(p for p in Path(result.run_path).glob("checkpoint_*") if (p / STATE_FILE).exists())
    state = torch.load(checkpoints[-1] / STATE_FILE, map_location="cpu", weights_only=True)
    models = {}
    for label, weights in (("G", state["generator"]), ("EMA copy of G", state["ema"])):
        if weights:  # score both networks of the last checkpoint when the run kept an EMA copy
            model = ConditionalGAN(**saved.config())
            model.generator.load_state_dict(weights)
            model.discriminator.load_state_dict(state["discriminator"])
            models[label] = model.eval()
    for label, model in models.items():
        table = image_quality(held_out.images[half_a], real_c, generate(model, fake_c), fake_c, classifier, names)
        print("\n" + format_table(table, f"## {label}: {n} generated per category vs held-out real"))
    print(f"\nsample grid: {result.samples_uri}\ngenerator: {result.model_uri} "
          f"(saved: {'EMA copy of G' if read_checkpoint(result.model_uri)['meta']['ema'] else 'G'})")


if __name__ == "__main__":
    main()
