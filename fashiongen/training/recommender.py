"""Train a recommender on a catalogue: DVBPR through Ray Train, the baselines in-process, one entry point.

    result = train_recommender(cfg)     # -> RecommenderTrainResult(model_uri, model_version, run_name, history, ...)

DVBPR (recommender.model=dvbpr) runs as a TorchTrainer with train.num_workers workers (DDP via prepare_model):
- Data: a Ray Dataset of `epoch_size` ids (one per training interaction, the official epoch length), mapped to
  BPR triples (u, i, j) by `sample_triple_batch` (fashiongen.models.bpr). The dataset is not materialised, so
  each epoch re-executes the map and draws fresh triples (fresh entropy, like the official unseeded sampler);
  each worker reads its shard with iter_torch_batches. Images are indexed from an array every worker loads once
  from the catalogue URI.
- Loss: the official batch sum. DDP averages gradients over W workers, so each worker's per-sample terms are
  scaled by W: one step follows the gradient of the sum over the global batch (W x batch_size triples) plus the
  CNN weight decay once, i.e. per-sample sum semantics are kept (not divided by W).
- Each epoch: rank 0 reports a checkpoint (model, Adam state, epoch, metric history) to train.storage_path
  under a stable run name, and a sampled-100 validation AUC on recommender.eval_users users; every rank reports
  (the loss is all-reduced). A rerun with the same name resumes; a worker failure is retried from the last
  checkpoint up to train.max_failures times. recommender.fail_at_epoch injects one failure (tests).
- At the end the driver computes Φ of every item and writes the model in the contract format.

Baselines (poprank, bprmf, vbpr) fit in-process with a per-epoch log line; no Ray needed.
The model goes to recommender.model_uri, default <lake_uri>/models/recommender/<model>.pt.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fashiongen import storage
from fashiongen.config import Config, RecommenderConfig, from_dict, recommender_model_uri, to_dict
from fashiongen.data.contract import Catalogue, load_catalogue, read_meta
from fashiongen.errors import FashiongenError
from fashiongen.evaluation.auc import held_out, sampled_auc
from fashiongen.models.bpr import TrainSet, sample_triples

log = logging.getLogger(__name__)
MODELS = ("dvbpr", "vbpr", "bprmf", "poprank")
STATE_FILE = "dvbpr_state.pt"


@dataclass
class RecommenderTrainResult:
    """What a training produced: where the model is and how each epoch went."""

    model_uri: str
    model_version: str
    kind: str
    run_name: str
    run_path: str  # Ray Train run folder ("" for in-process baselines)
    epochs: int
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0


def default_run_name(catalogue_uri: str, rec: RecommenderConfig, image: dict) -> str:
    """Stable across reruns on the same catalogue with the same network, so a rerun resumes."""
    key = repr((catalogue_uri.rstrip("/"), rec.model, rec.arch, rec.k, image))
    return f"recommender-{rec.model}-{rec.arch}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def validation_auc(model_scores, catalogue: Catalogue, users: np.ndarray, seed: int) -> float:
    """Mean sampled-100 AUC of the validation items of `users` (the per-epoch progress metric; the same seed every
    epoch, so epochs are compared on the same negatives)."""
    values = sampled_auc(model_scores, held_out(catalogue, "validation", users), seed=seed)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def eval_user_sample(num_users: int, count: int, seed: int) -> np.ndarray:
    if count <= 0 or count >= num_users:
        return np.arange(num_users, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(num_users, size=count, replace=False)).astype(np.int64)


def sample_triple_batch(batch: dict[str, np.ndarray], train: TrainSet) -> dict[str, np.ndarray]:
    """Ray Data UDF: one BPR triple per input row, drawn with fresh entropy (so every epoch resamples)."""
    users, pos, neg = sample_triples(train, len(batch["id"]), np.random.default_rng())
    return {"user": users, "pos": pos, "neg": neg}


def _inject_failure(fail_at_epoch: int, output_uri: str, epoch: int) -> None:
    """Test hook: raise once at the configured epoch; a marker under the run's output makes it once only."""
    if fail_at_epoch != epoch:
        return
    marker = storage.join(output_uri, f"_injected_failure_epoch_{epoch}")
    if storage.exists(marker):
        return
    storage.write_bytes(marker, b"")
    raise RuntimeError(f"injected failure at epoch {epoch} (recommender.fail_at_epoch)")


def _load_state(directory: str) -> dict[str, Any]:
    return torch.load(os.path.join(directory, STATE_FILE), map_location="cpu", weights_only=True)


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train worker: DVBPR epochs over this worker's shard of triples; a report (and on rank 0 a checkpoint)
    per epoch."""
    import ray.train
    import torch.distributed as dist
    from ray.train.torch import get_device, prepare_model

    from fashiongen.models.dvbpr import DVBPR, train_step

    rec: RecommenderConfig = from_dict(RecommenderConfig, config["recommender"])
    output_uri, catalogue_uri = config["output_uri"], config["catalogue_uri"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(rec.seed)  # same init on every rank (DDP also broadcasts rank 0's)
    device = get_device()
    catalogue = load_catalogue(catalogue_uri)
    model = DVBPR.for_catalogue(catalogue, rec).to(device)
    net = model.net
    optimizer = torch.optim.Adam(net.parameters(), lr=rec.lr)
    start, history = 0, []
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as directory:
            state = _load_state(directory)
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["epoch"] + 1, list(state["history"])
    ddp_net = prepare_model(net, move_to_device=False)
    eval_users = eval_user_sample(catalogue.num_users, rec.eval_users, rec.seed)
    shard = ray.train.get_dataset_shard("train")
    for epoch in range(start, rec.epochs):
        if rank == 0:
            _inject_failure(rec.fail_at_epoch, output_uri, epoch)
        began = time.perf_counter()
        net.train()
        totals = torch.zeros(2, dtype=torch.float64)  # objective sum, triples
        for batch in shard.iter_torch_batches(batch_size=rec.batch_size, device="cpu"):
            totals[0] += train_step(ddp_net, optimizer, catalogue.images, batch["user"].numpy(), batch["pos"].numpy(),
                                    batch["neg"].numpy(), rec, device, data_scale=float(world), module=net)
            totals[1] += len(batch["user"])
        if world > 1 and dist.is_initialized():
            dist.all_reduce(totals)
        seconds = time.perf_counter() - began
        metrics: dict[str, Any] = {"epoch": epoch, "start_epoch": start, "loss": float(totals[0] / max(totals[1], 1)),
                                   "triples": int(totals[1]), "seconds": seconds,
                                   "triples_per_s": float(totals[1] / max(seconds, 1e-9)), "workers": world}
        with tempfile.TemporaryDirectory() as directory:
            report_checkpoint = None
            if rank == 0:
                net.eval()
                model.index_catalogue(catalogue.images)
                metrics["val_auc_sampled"] = validation_auc(model.score, catalogue, eval_users, rec.seed)
                history.append(metrics)
                torch.save({"epoch": epoch, "net": {k: v.cpu() for k, v in net.state_dict().items()},
                            "optimizer": optimizer.state_dict(), "history": history},
                           os.path.join(directory, STATE_FILE))
                print(f"[recommender] dvbpr epoch {epoch + 1}/{rec.epochs} loss={metrics['loss']:.4f} "
                      f"val_auc_sampled={metrics['val_auc_sampled']:.4f} triples/s={metrics['triples_per_s']:.0f} "
                      f"({seconds:.1f}s, {world} worker(s))", flush=True)
                report_checkpoint = ray.train.Checkpoint.from_directory(directory)
            ray.train.report(metrics, checkpoint=report_checkpoint)


def _run_config(cfg: Config, run_name: str):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig

    storage_uri = cfg.train.storage_path
    kwargs: dict[str, Any] = {}
    if storage.is_s3(storage_uri):
        kwargs["storage_filesystem"], storage_uri = storage.filesystem(storage_uri)
    else:
        storage_uri = storage.filesystem(storage_uri)[1]
    return RunConfig(name=run_name, storage_path=storage_uri,
                     checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.num_to_keep),
                     failure_config=FailureConfig(max_failures=cfg.train.max_failures), **kwargs)


def triples_dataset(catalogue: Catalogue):
    """Ray Dataset of one (user, pos, neg) triple per training interaction, resampled each time it is executed."""
    import ray.data

    train = TrainSet.from_catalogue(catalogue)
    blocks = max(1, min(64, train.num_interactions // 4096))
    return ray.data.range(train.num_interactions, override_num_blocks=blocks).map_batches(
        sample_triple_batch, batch_format="numpy", batch_size=4096,
        fn_kwargs={"train": train})


def _train_dvbpr(cfg: Config, catalogue_uri: str, catalogue: Catalogue) -> RecommenderTrainResult:
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    from fashiongen.models.dvbpr import DVBPR

    rec = cfg.recommender
    run_name = cfg.train.run_name or default_run_name(catalogue_uri, rec, catalogue.meta["image"])
    output_uri = storage.join(cfg.lake_uri, "recommender", run_name)
    log.info("training dvbpr (%s, K=%d) on %s as run %s with %d worker(s)", rec.arch, rec.k, catalogue_uri, run_name,
             cfg.train.num_workers)
    began = time.perf_counter()
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"recommender": to_dict(rec), "catalogue_uri": catalogue_uri, "output_uri": output_uri},
        datasets={"train": triples_dataset(catalogue)},
        scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu),
        run_config=_run_config(cfg, run_name),
    )
    result = trainer.fit()
    seconds = time.perf_counter() - began
    if result.checkpoint is None:
        raise FashiongenError(f"recommender run {run_name!r} finished without a checkpoint; see the Ray logs")
    with result.checkpoint.as_directory() as directory:
        state = _load_state(directory)
    model = DVBPR.for_catalogue(catalogue, rec)
    model.net.load_state_dict(state["net"])
    model.net.eval()
    model.index_catalogue(catalogue.images)
    model.meta = {"run_name": run_name, "epochs_trained": state["epoch"] + 1, "catalogue_uri": catalogue_uri,
                  "recommender": to_dict(rec)}
    model_uri = recommender_model_uri(cfg)
    version = model.save(model_uri)
    return RecommenderTrainResult(model_uri=model_uri, model_version=version, kind="dvbpr", run_name=run_name,
                                  run_path=str(result.path), epochs=state["epoch"] + 1, history=state["history"],
                                  train_seconds=seconds)


def _train_baseline(cfg: Config, catalogue_uri: str, catalogue: Catalogue) -> RecommenderTrainResult:
    from fashiongen.models.baselines import build_baseline

    rec = cfg.recommender
    model = build_baseline(rec.model, catalogue, rec)
    eval_users = eval_user_sample(catalogue.num_users, rec.eval_users, rec.seed)
    total = rec.baseline_epochs if rec.model != "poprank" else 1

    def on_epoch(metrics: dict) -> None:
        metrics["val_auc_sampled"] = validation_auc(model.score, catalogue, eval_users, rec.seed)
        print(f"[recommender] {rec.model} epoch {metrics['epoch'] + 1}/{total} loss={metrics['loss']:.4f} "
              f"val_auc_sampled={metrics['val_auc_sampled']:.4f} ({metrics['seconds']:.1f}s)", flush=True)

    began = time.perf_counter()
    history = model.fit(catalogue, cfg, on_epoch)
    seconds = time.perf_counter() - began
    model.meta.update({"epochs_trained": len(history), "catalogue_uri": catalogue_uri, "recommender": to_dict(rec)})
    model_uri = recommender_model_uri(cfg)
    version = model.save(model_uri)
    return RecommenderTrainResult(model_uri=model_uri, model_version=version, kind=rec.model, run_name="",
                                  run_path="", epochs=len(history), history=history, train_seconds=seconds)


def train_recommender(cfg: Config, catalogue_uri: str | None = None,
                      catalogue: Catalogue | None = None) -> RecommenderTrainResult:
    """Train cfg.recommender.model on the catalogue and write it to the model URI (see the module docstring).
    `catalogue` may be passed when already loaded (with images) to skip reading it again in the driver."""
    if cfg.recommender.model not in MODELS:
        raise FashiongenError(f"recommender.model={cfg.recommender.model!r} is not a recommender: use one of "
                              f"{list(MODELS)}")
    catalogue_uri = catalogue_uri or cfg.data.catalogue_uri
    read_meta(catalogue_uri)  # a clear error when there is no catalogue
    needs_images = cfg.recommender.model in ("dvbpr", "vbpr")
    if catalogue is None or (needs_images and len(catalogue.images) == 0):
        catalogue = load_catalogue(catalogue_uri, with_images=needs_images)
    if cfg.recommender.model == "dvbpr":
        return _train_dvbpr(cfg, catalogue_uri, catalogue)
    return _train_baseline(cfg, catalogue_uri, catalogue)
