"""Train the conditional LSGAN with Ray Train: G and D in one TorchTrainer, DDP across workers.

    result = train_gan(cfg)            # -> GanTrainResult(model_uri, run_name, ...)

- Data: the catalogue's items.parquet read as a Ray Dataset of (image uint8 HWC, category) rows, decoded (and
  resized to the GAN's size) once, materialised, and streamed to each worker as its shard.
- DDP with `forward_sync_buffers=False` (torch's successor of `broadcast_buffers=False`): D runs twice (real,
  fake) before one backward, and re-broadcasting BN buffers on each forward would modify tensors autograd still
  needs. Buffers are synced once at wrap time; then each rank keeps its own BN statistics, rank 0's are saved.
- Each epoch rank 0 reports a checkpoint (G, D, both Adam states, EMA copy, epoch) to `train.storage_path`
  under a stable run name, writes a sample grid (one row per category) to `LakePaths.training_run("gan", run)/samples/`, and
  prints one progress line. A rerun with the same name resumes from the latest checkpoint; worker failures
  are retried `train.max_failures` times from it.
- At the end the driver writes the generator in the contract format to `LakePaths.generator_model()` (gan.model_uri,
  default `<lake>/models/generator.pt`); `load_generator(uri)` reads it.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fashiongen import faults, storage
from fashiongen.config import Config, GanConfig
from fashiongen.data.contract import read_meta
from fashiongen.data.images import decode_image, encode_png, from_tensor_range
from fashiongen.models.contract import save_checkpoint
from fashiongen.lake.paths import LakePaths
from fashiongen.models.gan import ConditionalLSGAN, GanConfigError, arch_spec, d_loss_fn, ema_update, g_loss_fn, one_hot
from fashiongen.runtime import ensure_ray
from fashiongen.training.ray_train import final_state, resumed_state, run_config, save_and_report


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


@dataclass(frozen=True)
class GanSettings:
    """Concrete GAN settings, resolved once from the config (0 = the architecture's default) and the catalogue."""

    arch: str
    z_dim: int
    lr: float
    beta1: float
    beta2: float
    batch_size: int
    epochs: int
    seed: int
    ema_decay: float
    spectral_norm: bool
    sample_columns: int
    categories: tuple[str, ...]
    image_shape: tuple[int, int, int]  # (C, H, W) the GAN draws
    source_size: tuple[int, int]  # (W, H) of the catalogue's images
    mode: str  # the catalogue's image mode (L, RGB)

    def model_config(self) -> dict[str, Any]:
        """The `ConditionalLSGAN` constructor arguments."""
        return {"arch": self.arch, "z_dim": self.z_dim, "categories": list(self.categories),
                "image_shape": tuple(self.image_shape), "spectral_norm": self.spectral_norm}

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples) for Ray's train_loop_config and checkpoint metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "GanSettings":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def resolve_settings(gan: GanConfig, meta: dict) -> GanSettings:
    """Concrete GAN settings: config values, the architecture's defaults where the config says 0, and the
    image shape and categories of the catalogue."""
    spec = arch_spec(gan.arch)
    image = meta["image"]
    channels = 3 if image["mode"] == "RGB" else 1
    size = gan.image_size or spec.image_size or image["height"]
    return GanSettings(
        arch=gan.arch, z_dim=gan.z_dim or spec.z_dim, lr=gan.lr or spec.lr, beta1=gan.beta1, beta2=gan.beta2,
        batch_size=gan.batch_size or spec.batch_size, epochs=gan.epochs or spec.epochs, seed=gan.seed,
        ema_decay=gan.ema_decay, spectral_norm=gan.spectral_norm, sample_columns=gan.sample_columns,
        categories=tuple(meta["categories"]), image_shape=(channels, size, size),
        source_size=(image["width"], image["height"]), mode=image["mode"])


def default_run_name(catalogue_uri: str, settings: GanSettings) -> str:
    """Stable across reruns of the same catalogue and network shape, so a rerun resumes the run."""
    config = settings.model_config()
    config["image_shape"] = list(config["image_shape"])  # the key of runs named before settings were frozen
    key = repr((catalogue_uri.rstrip("/"), config))
    return f"gan-{settings.arch}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def sample_grid(model: ConditionalLSGAN, z: torch.Tensor) -> np.ndarray:
    """uint8 (rows*H, cols*W, C) grid: one row per category, one column per latent in `z` (cols, z_dim)."""
    cats = len(model.categories)
    cols = z.shape[0]
    with torch.no_grad():
        images = model.generate(z.repeat(cats, 1).to(model.device),
                                torch.arange(cats, device=model.device).repeat_interleave(cols))
    arr = from_tensor_range(images.cpu().numpy())  # (cats*cols, H, W, C)
    _, h, w, c = arr.shape
    return arr.reshape(cats, cols, h, w, c).transpose(0, 2, 1, 3, 4).reshape(cats * h, cols * w, c)


def _decode_batch(batch: dict[str, np.ndarray], categories: list[str], mode: str,
                  size: tuple[int, int] | None) -> dict[str, np.ndarray]:
    index = {c: k for k, c in enumerate(categories)}
    images = np.stack([decode_image(data, mode, size) for data in batch["image_png"]])
    return {"image": images, "category": np.array([index[c] for c in batch["category"]], dtype=np.int64)}


def catalogue_dataset(catalogue_uri: str, settings: GanSettings):
    """Ray Dataset of {"image": uint8 (H, W, C), "category": int64} rows, decoded once and materialised."""
    import ray.data

    fs, path = storage.filesystem(storage.join(catalogue_uri, "items.parquet"))
    _, size, _ = settings.image_shape
    resize = None if settings.source_size == (size, size) else (size, size)
    ds = ray.data.read_parquet(path, filesystem=fs, columns=["image_png", "category"])
    ds = ds.map_batches(_decode_batch, batch_size=4096, batch_format="numpy",
                        fn_kwargs={"categories": list(settings.categories), "mode": settings.mode, "size": resize})
    return ds.materialize()


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train worker function: one D step then one G step per batch (the official order), per epoch a report."""
    import ray.train
    import torch.distributed as dist
    from ray.train.torch import get_device, prepare_model

    settings, output_uri = GanSettings.from_dict(config["settings"]), config["output_uri"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(settings.seed * 1000 + rank)
    device = get_device()
    net = ConditionalLSGAN(**settings.model_config())
    G_net, D_net = net.generator.to(device), net.discriminator.to(device)
    ema = copy.deepcopy(G_net).eval().requires_grad_(False) if settings.ema_decay > 0 else None
    betas = (settings.beta1, settings.beta2)
    opt_g = torch.optim.Adam(G_net.parameters(), lr=settings.lr, betas=betas)
    opt_d = torch.optim.Adam(D_net.parameters(), lr=settings.lr, betas=betas)
    start = 0
    state = resumed_state()
    if state:
        G_net.load_state_dict(state["generator"])
        D_net.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        if ema is not None:
            ema.load_state_dict(state["ema"] or G_net.state_dict())
        start = state["epoch"] + 1
    ddp = {"forward_sync_buffers": False}
    G = prepare_model(G_net, parallel_strategy_kwargs=ddp)
    D = prepare_model(D_net, parallel_strategy_kwargs=ddp)
    num_cats, z_dim, batch_size = len(settings.categories), settings.z_dim, settings.batch_size
    sample_z = torch.randn(settings.sample_columns, z_dim, generator=torch.Generator().manual_seed(settings.seed))
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start, settings.epochs):
        if rank == 0:
            faults.fail_once_at_epoch(config["faults"], "gan.epoch", epoch, output_uri)
        G.train()
        D.train()
        began = time.perf_counter()
        totals = torch.zeros(3, dtype=torch.float64)  # images, d_loss * batches, g_loss * batches
        steps = 0
        for batch in shard.iter_torch_batches(batch_size=batch_size, drop_last=True, device=device,
                                              local_shuffle_buffer_size=max(8 * batch_size, 2048),
                                              local_shuffle_seed=settings.seed * 1000 + epoch * 10 + rank):
            x = batch["image"].permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
            y = one_hot(batch["category"], num_cats)
            z = torch.randn(x.shape[0], z_dim, device=device)
            fake = G(z, y)
            d_loss = d_loss_fn(D(x, y), D(fake.detach(), y))
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss = g_loss_fn(D(fake, y))
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            if ema is not None:
                ema_update(ema, G_net, settings.ema_decay)
            totals += torch.tensor([x.shape[0], d_loss.item(), g_loss.item()], dtype=torch.float64)
            steps += 1
        steps_all = torch.tensor([float(steps)], dtype=torch.float64)
        if world > 1 and dist.is_initialized():
            dist.all_reduce(totals)
            dist.all_reduce(steps_all)
        seconds = time.perf_counter() - began
        metrics = {"epoch": epoch, "start_epoch": start, "d_loss": float(totals[1] / max(steps_all.item(), 1)),
                   "g_loss": float(totals[2] / max(steps_all.item(), 1)), "images": int(totals[0]),
                   "images_per_s": float(totals[0] / max(seconds, 1e-9)), "seconds": seconds}
        if rank == 0:
            sampler = ConditionalLSGAN.from_networks(settings.model_config(), ema if ema is not None else G_net, D_net)
            grid_uri = storage.join(output_uri, "samples", f"epoch_{epoch:03d}.png")
            storage.write_bytes(grid_uri, encode_png(sample_grid(sampler, sample_z)))
            metrics["samples_uri"] = grid_uri
            print(f"[gan] epoch {epoch + 1}/{settings.epochs} d_loss={metrics['d_loss']:.4f} "
                  f"g_loss={metrics['g_loss']:.4f} images/s={metrics['images_per_s']:.0f} "
                  f"({seconds:.0f}s, {world} worker(s)) samples={grid_uri}", flush=True)
        save_and_report(metrics, rank, lambda: {
            "epoch": epoch, "generator": G_net.state_dict(), "discriminator": D_net.state_dict(),
            "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
            "ema": ema.state_dict() if ema is not None else {}})


def train_gan(cfg: Config, catalogue_uri: str | None = None, ray_address: str | None = None) -> GanTrainResult:
    """Train (or resume) the GAN on a catalogue through Ray Train (started or joined here, after the catalogue is
    checked); write the generator to `LakePaths.generator_model`."""
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    catalogue_uri = catalogue_uri or cfg.data.catalogue_uri
    meta = read_meta(catalogue_uri)
    settings = resolve_settings(cfg.gan, meta)
    per_worker = meta["counts"]["items"] // cfg.train.num_workers
    if per_worker < settings.batch_size:  # batches are full (drop_last): no step would ever be taken
        raise GanConfigError(f"{catalogue_uri} has {meta['counts']['items']} images, {per_worker} per worker: fewer "
                             f"than one batch of gan.batch_size={settings.batch_size}, so the GAN would train no "
                             "step. Lower gan.batch_size or train.num_workers")
    ensure_ray(ray_address)
    run_name = cfg.train.run_name or default_run_name(catalogue_uri, settings)
    paths = LakePaths.of(cfg)
    output_uri = paths.training_run("gan", run_name)
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"settings": settings.to_dict(), "output_uri": output_uri, "faults": faults.planned()},
        datasets={"train": catalogue_dataset(catalogue_uri, settings)},
        scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu),
        run_config=run_config(cfg.train, run_name),
    )
    result = trainer.fit()
    state = final_state(result, f"GAN run {run_name!r} under {cfg.train.storage_path!r}", "gan.epochs")
    if not (result.metrics or {}).get("images"):
        raise GanConfigError(f"GAN run {run_name!r} took no optimisation step in its last epoch: the generator was "
                             "not saved (check gan.batch_size against the catalogue's size)")
    model = ConditionalLSGAN(**settings.model_config())
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
    samples_uri = metrics.get("samples_uri") or storage.join(output_uri, "samples", f"epoch_{state['epoch']:03d}.png")
    return GanTrainResult(model_uri=model_uri, model_version=version, run_name=run_name,
                          run_path=str(result.path), epochs=state["epoch"] + 1, metrics=metrics,
                          samples_uri=samples_uri)
