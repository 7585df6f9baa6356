"""Train the conditional GAN with Ray Train: G and D in one TorchTrainer, DDP across workers.

    result = train_gan(cfg)            # -> GanTrainResult(model_uri, run_name, quality, ...)

- Data: the catalogue's items.parquet read as a Ray Dataset of (image uint8 HWC, category) rows, decoded (and
  resized to the GAN's size) once, materialised, and streamed to each worker as its shard. `gan.holdout` of the
  items (chosen by a hash of item id and seed: stable across reruns) are never trained on: they are the real
  images each epoch's quality is measured against.
- The recipe (losses, augmentation, EMA, the step) is `training/gan_steps.py`, pure torch; this module adds Ray.
- DDP with `forward_sync_buffers=False` (torch's successor of `broadcast_buffers=False`): D runs twice (real,
  fake) before one backward, and re-broadcasting BN buffers on each forward would modify tensors autograd still
  needs. Buffers are synced once at wrap time; then each rank keeps its own BN statistics, rank 0's are saved.
- Each epoch rank 0 reports a checkpoint (G, D, both Adam states, EMA copy, every rank's RNG state, epoch) to
  `train.storage_path` under a stable run name, writes a sample grid (one row per category) to
  `LakePaths.training_run("gan", run)/samples/epoch_NNN.png` and, beside it, `quality/epoch_NNN.json`: in-domain
  FID/KID, class consistency and diversity of `gan.quality_per_category` samples per category against the held-out
  images, overall and per category (the catalogue's judge classifier's feature space), and prints one progress
  line. A rerun with the same name resumes from the latest checkpoint, exactly (data order and RNG state);
  worker failures are retried `train.max_failures` times from it.
- At the end the driver writes the generator in the contract format to `LakePaths.generator_model()` (gan.model_uri,
  default `<lake>/models/generator.pt`); `load_generator(uri)` reads it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fashiongen import faults, storage
from fashiongen.config import Config
from fashiongen.data.contract import read_meta
from fashiongen.data.images import decode_image, encode_png, from_tensor_range
from fashiongen.evaluation.image_quality import format_table
from fashiongen.evaluation.realism import generator_quality
from fashiongen.lake.paths import LakePaths
from fashiongen.models.classifier import load_classifier
from fashiongen.models.contract import sample_latents, save_checkpoint
from fashiongen.models.gan import ConditionalGAN, GanConfigError, one_hot
from fashiongen.runtime import ensure_ray
from fashiongen.training.classifier import ensure_classifier
from fashiongen.training.gan_steps import GanSettings, GanStepper, resolve_settings, to_model_input
from fashiongen.training.ray_train import (final_state, finished_run, gather_from_ranks, resumed_state, run_config,
                                           save_and_report)

MAX_QUALITY_REAL = 2000  # held-out images each epoch's quality uses at most (a seeded sample beyond that)
# Recipe settings at the paper's values leave a run's name as it was before they existed.
PAPER_RECIPE = {"conditioning": "concat", "loss": "lsgan", "aux_classifier": 0.0, "conditional_bn": False,
                "augment": [], "lr_d": None, "ema_decay": 0.0, "holdout": 0.0}


@dataclass
class GanTrainResult:
    """What a training run produced."""

    model_uri: str
    model_version: str
    run_name: str
    run_path: str
    epochs: int
    metrics: dict[str, Any]  # last reported epoch metrics
    samples_uri: str  # the last epoch's sample grid
    quality: dict[str, Any] = field(default_factory=dict)  # the last epoch's quality file ({} when off)
    quality_table: str = ""  # it, as the per-category table `format_table` prints
    trained_now: bool = True  # False: the run had finished before, its last checkpoint was taken as it is


def default_run_name(catalogue_uri: str, settings: GanSettings) -> str:
    """Stable across reruns of the same catalogue, network shape and recipe (not epochs: more epochs resume the run);
    the paper's recipe keeps the names runs had before the recipe settings existed."""
    values = settings.to_dict()
    recipe = {k: values[k] for k, paper in PAPER_RECIPE.items()
              if values[k] != paper and not (k == "lr_d" and values[k] == values["lr"])}
    config = {k: v for k, v in settings.model_config().items()
              if k not in ("conditioning", "loss", "classifier_head", "conditional_bn")}
    config["image_shape"] = list(config["image_shape"])  # the key of runs named before settings were frozen
    key = repr((catalogue_uri.rstrip("/"), config, *([recipe] if recipe else [])))
    return f"gan-{settings.arch}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def held_out(item_ids: list[str], fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the items the GAN never trains on: sha256(seed, id) below `fraction` (stable, ~stratified)."""
    if fraction <= 0:
        return np.zeros(len(item_ids), dtype=bool)
    cut = int(fraction * 2 ** 32)
    return np.array([int.from_bytes(hashlib.sha256(f"{seed}\x1f{i}".encode()).digest()[:4], "little") < cut
                     for i in item_ids], dtype=bool)


def sample_grid(model: ConditionalGAN, z: torch.Tensor) -> np.ndarray:
    """uint8 (rows*H, cols*W, C) grid: one row per category, one column per latent in `z` (cols, z_dim)."""
    cats = len(model.categories)
    cols = z.shape[0]
    with torch.no_grad():
        images = model.generate(z.repeat(cats, 1).to(model.device),
                                torch.arange(cats, device=model.device).repeat_interleave(cols))
    arr = from_tensor_range(images.cpu().numpy())  # (cats*cols, H, W, C)
    _, h, w, c = arr.shape
    return arr.reshape(cats, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(cats * h, cols * w, c)


def _resize(settings: GanSettings) -> tuple[int, int] | None:
    _, size, _ = settings.image_shape
    return None if settings.source_size == (size, size) else (size, size)


def _decode_batch(batch: dict[str, np.ndarray], categories: list[str], mode: str, size: tuple[int, int] | None,
                  holdout: float, seed: int, image_shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """The training rows of a batch (held-out items dropped), decoded to uint8 (H, W, C)."""
    index = {c: k for k, c in enumerate(categories)}
    keep = ~held_out([str(i) for i in batch["item_id"]], holdout, seed)
    images = [decode_image(data, mode, size) for data, k in zip(batch["image_png"], keep) if k]
    channels, height, width = image_shape
    return {"image": np.stack(images) if images else np.zeros((0, height, width, channels), np.uint8),
            "category": np.array([index[c] for c, k in zip(batch["category"], keep) if k], dtype=np.int64)}


def catalogue_dataset(catalogue_uri: str, settings: GanSettings):
    """Ray Dataset of the training rows {"image": uint8 (H, W, C), "category": int64}, decoded once, materialised."""
    import ray.data

    fs, path = storage.filesystem(storage.join(catalogue_uri, "items.parquet"))
    ds = ray.data.read_parquet(path, filesystem=fs, columns=["item_id", "image_png", "category"])
    ds = ds.map_batches(_decode_batch, batch_size=4096, batch_format="numpy",
                        fn_kwargs={"categories": list(settings.categories), "mode": settings.mode,
                                   "size": _resize(settings), "holdout": settings.holdout, "seed": settings.seed,
                                   "image_shape": settings.image_shape})
    return ds.materialize()


def quality_images(catalogue_uri: str, settings: GanSettings) -> tuple[np.ndarray, np.ndarray, str]:
    """(uint8 images, category indices, what they are) each epoch's quality compares with: the held-out items (at
    most MAX_QUALITY_REAL, a seeded sample), or a sample of the training images when gan.holdout is 0."""
    table = storage.read_table(storage.join(catalogue_uri, "items.parquet"),
                               columns=["item_id", "image_png", "category"])
    mask = held_out([str(i) for i in table.column("item_id").to_pylist()], settings.holdout, settings.seed)
    label = "held-out images" if mask.any() else "training images (gan.holdout=0: nothing is held out)"
    rows = np.flatnonzero(mask) if mask.any() else np.arange(len(mask))
    if len(rows) > MAX_QUALITY_REAL:
        rows = np.sort(np.random.default_rng(settings.seed).choice(rows, MAX_QUALITY_REAL, replace=False))
    index = {c: k for k, c in enumerate(settings.categories)}
    png, cats = table.column("image_png"), table.column("category")
    return (np.stack([decode_image(png[int(r)].as_py(), settings.mode, _resize(settings)) for r in rows]),
            np.array([index[cats[int(r)].as_py()] for r in rows], dtype=np.int64), label)


def epoch_quality(sampler: ConditionalGAN, settings: GanSettings, config: dict[str, Any], classifier) -> dict:
    """The quality file's content for one epoch (see the module docstring)."""
    table = generator_quality(sampler, classifier, config["quality_images"], config["quality_categories"],
                              settings.quality_per_category, settings.truncation, seed=settings.seed + 1)
    return {"real": config["quality_label"], "n_real": int(len(config["quality_images"])),
            "truncation": settings.truncation, "sampler": "EMA copy of G" if settings.ema_decay > 0 else "G", **table}


def _quality_line(quality: dict) -> str:
    o = quality["overall"]
    weakest = min(quality["per_category"].items(), key=lambda kv: kv[1]["class_consistency"], default=None)
    worst = f", weakest {weakest[0]} {weakest[1]['class_consistency']:.0%}" if weakest else ""
    return (f"FID {o['fid']:.2f} KID {o['kid']:.4f} class {o['class_consistency']:.1%}{worst} "
            f"diversity {o['diversity_ratio']:.0%} of real")


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train worker function: one D step then one G step per batch (the official order), per epoch a report."""
    import ray.train
    import torch.distributed as dist
    from ray.train.torch import get_device, prepare_model

    settings, output_uri = GanSettings.from_dict(config["settings"]), config["output_uri"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    stepper = GanStepper(settings, get_device(), rank)
    start = 0
    state = resumed_state()
    if state:
        stepper.load_state(state, world)
        start = state["epoch"] + 1
    stepper.wrap(lambda net: prepare_model(net, parallel_strategy_kwargs={"forward_sync_buffers": False}))
    device = stepper.device
    num_cats, batch_size = len(settings.categories), settings.batch_size
    sample_z = sample_latents(settings.sample_columns, settings.z_dim, settings.truncation,
                              torch.Generator().manual_seed(settings.seed))
    classifier = load_classifier(config["classifier_uri"]) if rank == 0 and config["classifier_uri"] else None
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start, settings.epochs):
        if rank == 0:
            faults.fail_once_at_epoch(config["faults"], "gan.epoch", epoch, output_uri)
        stepper.train()
        began = time.perf_counter()
        totals = torch.zeros(3, dtype=torch.float64)  # images, d_loss * batches, g_loss * batches
        steps = 0
        for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True, device=device,
                                              local_shuffle_buffer_size=max(8 * batch_size, 2048),
                                              local_shuffle_seed=settings.seed * 1000 + epoch * 10 + rank):
            d_loss, g_loss = stepper.step(to_model_input(batch["image"]), one_hot(batch["category"], num_cats))
            totals += torch.tensor([batch["image"].shape[0], d_loss, g_loss], dtype=torch.float64)
            steps += 1
        steps_all = torch.tensor([float(steps)], dtype=torch.float64)
        if world > 1 and dist.is_initialized():
            dist.all_reduce(totals)
            dist.all_reduce(steps_all)
        rng_states = gather_from_ranks(stepper.rng_state().cpu(), world)
        seconds = time.perf_counter() - began
        metrics = {"epoch": epoch, "start_epoch": start, "d_loss": float(totals[1] / max(steps_all.item(), 1)),
                   "g_loss": float(totals[2] / max(steps_all.item(), 1)), "images": int(totals[0]),
                   "images_per_s": float(totals[0] / max(seconds, 1e-9)), "seconds": seconds}
        if rank == 0:
            sampler = stepper.sampler()
            grid_uri = storage.join(output_uri, "samples", f"epoch_{epoch:03d}.png")
            storage.write_bytes(grid_uri, encode_png(sample_grid(sampler, sample_z)))
            metrics["samples_uri"] = grid_uri
            line = ""
            if classifier is not None:
                quality = epoch_quality(sampler, settings, config, classifier)
                quality_uri = storage.join(output_uri, "quality", f"epoch_{epoch:03d}.json")
                storage.write_bytes(quality_uri, json.dumps({"epoch": epoch, **quality}, indent=1).encode())
                metrics["quality_uri"] = quality_uri
                line = " " + _quality_line(quality)
            print(f"[gan] epoch {epoch + 1}/{settings.epochs} d_loss={metrics['d_loss']:.4f} "
                  f"g_loss={metrics['g_loss']:.4f} images/s={metrics['images_per_s']:.0f} "
                  f"({seconds:.0f}s, {world} worker(s)){line} samples={grid_uri}", flush=True)
        save_and_report(metrics, rank, lambda: {"epoch": epoch, **stepper.state(rng_states)})


def _fit(cfg: Config, catalogue_uri: str, settings: GanSettings, run_name: str, output_uri: str,
         ray_address: str | None):
    """Train (or resume) the run through Ray Train, with the in-domain quality files when asked for."""
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    ensure_ray(ray_address)
    quality: dict[str, Any] = {"classifier_uri": "", "quality_images": None, "quality_categories": None,
                               "quality_label": ""}
    if settings.quality_per_category:
        images, categories, label = quality_images(catalogue_uri, settings)
        judge = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, catalogue_uri=catalogue_uri))
        ensure_classifier(judge)  # the lake's judge classifier: the feature space of every in-domain metric
        quality = {"classifier_uri": LakePaths.of(judge).classifier_model("judge"), "quality_images": images,
                   "quality_categories": categories, "quality_label": label}
    return TorchTrainer(
        train_loop,
        train_loop_config={"settings": settings.to_dict(), "output_uri": output_uri, "faults": faults.planned(),
                           **quality},
        datasets={"train": catalogue_dataset(catalogue_uri, settings)},
        scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu),
        run_config=run_config(cfg.train, run_name),
    ).fit()


def train_gan(cfg: Config, catalogue_uri: str | None = None, ray_address: str | None = None) -> GanTrainResult:
    """Train (or resume) the GAN on a catalogue through Ray Train (started or joined here, after the catalogue is
    checked) unless the run has finished; write the generator to `LakePaths.generator_model`."""
    catalogue_uri = catalogue_uri or cfg.data.catalogue_uri
    meta = read_meta(catalogue_uri)
    settings = resolve_settings(cfg.gan, meta)
    per_worker = int(meta["counts"]["items"] * (1 - settings.holdout)) // cfg.train.num_workers
    if per_worker < settings.batch_size:  # batches are full (drop_last): no step would ever be taken
        raise GanConfigError(f"{catalogue_uri} has {meta['counts']['items']} images, about {per_worker} per worker "
                             f"after gan.holdout={settings.holdout}: fewer than one batch of gan.batch_size="
                             f"{settings.batch_size}, so the GAN would train no step. Lower gan.batch_size or "
                             "train.num_workers")
    run_name = cfg.train.run_name or default_run_name(catalogue_uri, settings)
    paths = LakePaths.of(cfg)
    output_uri = paths.training_run("gan", run_name)
    result = finished_run(cfg.train, run_name, settings.epochs)
    trained_now = result is None
    if trained_now:
        result = _fit(cfg, catalogue_uri, settings, run_name, output_uri, ray_address)
    state = final_state(result, f"GAN run {run_name!r} under {cfg.train.storage_path!r}", "gan.epochs")
    if not (result.metrics or {}).get("images"):
        raise GanConfigError(f"GAN run {run_name!r} took no optimisation step in its last epoch: the generator was "
                             "not saved (check gan.batch_size against the catalogue's size)")
    model = ConditionalGAN(**settings.model_config())
    use_ema = settings.ema_decay > 0 and bool(state["ema"])
    model.generator.load_state_dict(state["ema"] if use_ema else state["generator"])
    model.discriminator.load_state_dict(state["discriminator"])
    model.eval()
    model_uri = paths.generator_model()
    payload = model.checkpoint_payload()
    payload["meta"] = {"run_name": run_name, "epochs_trained": state["epoch"] + 1, "catalogue_uri": catalogue_uri,
                       "ema": use_ema, "settings": settings.to_dict()}
    version = save_checkpoint(model_uri, payload)
    metrics = dict(result.metrics or {})
    last = f"epoch_{state['epoch']:03d}"
    samples_uri = metrics.get("samples_uri") or storage.join(output_uri, "samples", f"{last}.png")
    quality_uri = storage.join(output_uri, "quality", f"{last}.json")
    final, table = {}, ""
    if settings.quality_per_category and storage.exists(quality_uri):
        final = json.loads(storage.read_bytes(quality_uri))
        table = format_table(final, f"## GAN quality after epoch {state['epoch'] + 1}: {settings.quality_per_category} "
                                    f"samples per category vs {final['n_real']} {final['real']} (in-domain)")
        storage.write_bytes(storage.join(output_uri, "quality", "final.txt"), (table + "\n").encode())
    return GanTrainResult(model_uri=model_uri, model_version=version, run_name=run_name,
                          run_path=str(result.path), epochs=state["epoch"] + 1, metrics=metrics,
                          samples_uri=samples_uri, quality=final, quality_table=table, trained_now=trained_now)
