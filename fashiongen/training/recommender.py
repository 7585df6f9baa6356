"""Train a recommender on a catalogue: distributed models (DVBPR) through Ray Train, the others in-process.

    result = train_recommender(cfg)     # -> RecommenderTrainResult(model_uri, model_version, run_name, history, ...)

A model whose class says `distributed = True` (DVBPR) runs as a TorchTrainer with train.num_workers workers (DDP
via prepare_model), through the contract's distributed hooks (`build_for`, `network`, `triple_stream`,
`train_batch`, `index_catalogue`):
- Data: each worker draws the epoch's BPR triples itself from the model's seeded `triple_stream` (one triple per
  training interaction, the official epoch length; fashiongen.models.bpr.EpochTriples) and trains on its
  contiguous shard, so no Ray Data hand-off sits in the step, one worker trains exactly the in-process `fit`, and
  a resumed run draws what the uninterrupted one would. Images are indexed from an array every worker loads once
  from the catalogue URI. Each worker reserves `worker_cpus` CPUs and runs that many torch threads.
- Loss: the official batch sum. DDP averages gradients over W workers, so each worker's per-sample terms are
  scaled by W: one step follows the gradient of the sum over the global batch (W x batch_size triples) plus the
  CNN weight decay once, i.e. per-sample sum semantics are kept (not divided by W).
- Each epoch: rank 0 reports a checkpoint (network, Adam state, every rank's RNG state, epoch, metric history) to
  train.storage_path under a stable run name, and a sampled-100 validation AUC on recommender.eval_users users;
  every rank reports (the loss is all-reduced). A rerun with the same name resumes, exactly (triples and dropout);
  a worker failure is retried from the last checkpoint up to train.max_failures times.
  FASHIONGEN_FAULTS=recommender.epoch=N injects one failure (tests).
- At the end the driver computes Φ of every item and writes the model in the contract format.

The others (poprank, categorypop, bprmf, vbpr) fit in-process with a per-epoch log line; no Ray needed.
The model goes to `LakePaths.recommender_model` (recommender.model_uri, default <lake>/models/recommender/<model>.pt).
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from fashiongen import faults
from fashiongen.config import Config, RecommenderConfig, from_dict, to_dict
from fashiongen.data.contract import Catalogue, load_catalogue, read_meta
from fashiongen.errors import FashiongenError
from fashiongen.evaluation.auc import held_out, sampled_auc
from fashiongen.lake.paths import LakePaths
from fashiongen.models.bpr import EpochTriples
from fashiongen.models.contract import recommender_class
from fashiongen.runtime import ensure_ray
from fashiongen.training.ray_train import (final_state, finished_run, gather_from_ranks, restore_rng_state,
                                           resumed_state, rng_state, run_config, save_and_report, worker_cpus)

log = logging.getLogger(__name__)


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
    trained_now: bool = True  # False: the run had finished before, its last checkpoint was taken as it is


def default_run_name(catalogue_uri: str, rec: RecommenderConfig, image: dict) -> str:
    """Stable across reruns on the same catalogue with the same network, so a rerun resumes."""
    key = repr((catalogue_uri.rstrip("/"), rec.model, rec.arch, rec.k, image, rec.seed, rec.model_uri))
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


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train worker: epochs over this worker's shard of triples through the model's distributed hooks; a
    report (and on rank 0 a checkpoint) per epoch."""
    import ray.train
    import torch.distributed as dist
    from ray.train.torch import get_device, prepare_model

    rec: RecommenderConfig = from_dict(RecommenderConfig, config["recommender"])
    output_uri, catalogue_uri = config["output_uri"], config["catalogue_uri"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config["threads"])
    torch.manual_seed(rec.seed)  # same init on every rank (DDP also broadcasts rank 0's)
    device = get_device()
    catalogue = load_catalogue(catalogue_uri)
    model = recommender_class(rec.model).from_config(rec)
    model.build_for(catalogue)
    model.to(device)
    if rank:  # dropout masks of their own; rank 0 keeps the stream of the in-process fit
        torch.manual_seed(rec.seed * 1000 + rank)
    net = model.network()
    optimizer = torch.optim.Adam(net.parameters(), lr=rec.lr)
    start, history = 0, []
    state = resumed_state()
    if state:
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["epoch"] + 1, list(state["history"])
        restore_rng_state(state.get("rng"), rank, world, device, rec.seed * 1000 + rank + 7919 * start)
    ddp_net = prepare_model(net, move_to_device=False)
    eval_users = eval_user_sample(catalogue.num_users, rec.eval_users, rec.seed)
    stream = model.triple_stream(catalogue)
    for epoch in range(start, rec.epochs):
        if rank == 0:
            faults.fail_once_at_epoch(config["faults"], "recommender.epoch", epoch, output_uri)
        began = time.perf_counter()
        net.train()
        users, pos, neg = EpochTriples.shard(stream.at(epoch), rank, world)
        totals = torch.zeros(2, dtype=torch.float64)  # objective sum, triples
        for lo in range(0, len(users), rec.batch_size):
            batch = slice(lo, lo + rec.batch_size)
            totals[0] += model.train_batch(ddp_net, optimizer, catalogue.images, users[batch], pos[batch], neg[batch],
                                           data_scale=float(world))
        totals[1] = len(users)
        if world > 1 and dist.is_initialized():
            dist.all_reduce(totals)
        rng_states = gather_from_ranks(rng_state(device), world)
        seconds = time.perf_counter() - began
        metrics: dict[str, Any] = {"epoch": epoch, "start_epoch": start, "loss": float(totals[0] / max(totals[1], 1)),
                                   "triples": int(totals[1]), "seconds": seconds,
                                   "triples_per_s": float(totals[1] / max(seconds, 1e-9)), "workers": world,
                                   "threads": config["threads"]}
        if rank == 0:
            net.eval()
            model.index_catalogue(catalogue.images)
            metrics["val_auc_sampled"] = validation_auc(model.score, catalogue, eval_users, rec.seed)
            history.append(metrics)
            print(f"[recommender] {rec.model} epoch {epoch + 1}/{rec.epochs} loss={metrics['loss']:.4f} "
                  f"val_auc_sampled={metrics['val_auc_sampled']:.4f} triples/s={metrics['triples_per_s']:.0f} "
                  f"({seconds:.1f}s, {world} worker(s) x {config['threads']} thread(s))", flush=True)
        save_and_report(metrics, rank, lambda: {
            "epoch": epoch, "net": {k: v.cpu() for k, v in net.state_dict().items()},
            "optimizer": optimizer.state_dict(), "history": history, "rng": rng_states})


def _train_distributed(cfg: Config, catalogue_uri: str, catalogue: Catalogue,
                       ray_address: str | None) -> RecommenderTrainResult:
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    rec = cfg.recommender
    run_name = cfg.train.run_name or default_run_name(catalogue_uri, rec, catalogue.meta["image"])
    output_uri = LakePaths.of(cfg).training_run("recommender", run_name)
    began = time.perf_counter()
    result = finished_run(cfg.train, run_name, rec.epochs)
    trained_now = result is None
    if trained_now:
        ensure_ray(ray_address)
        cpus = worker_cpus(cfg.train)
        log.info("training %s (%s, K=%d) on %s as run %s with %d worker(s) x %d CPU(s)", rec.model, rec.arch, rec.k,
                 catalogue_uri, run_name, cfg.train.num_workers, cpus)
        result = TorchTrainer(
            train_loop,
            train_loop_config={"recommender": to_dict(rec), "catalogue_uri": catalogue_uri, "output_uri": output_uri,
                               "faults": faults.planned(), "threads": cpus},
            scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu,
                                         resources_per_worker={"CPU": cpus}),
            run_config=run_config(cfg.train, run_name),
        ).fit()
    seconds = time.perf_counter() - began
    state = final_state(result, f"recommender run {run_name!r}", "recommender.epochs")
    if not sum(m.get("triples", 0) for m in state["history"]):
        raise FashiongenError(f"recommender run {run_name!r} trained on no triple: the model was not saved (does the "
                              f"catalogue {catalogue_uri} have training interactions?)")
    model = recommender_class(rec.model).from_config(rec)
    model.build_for(catalogue)
    model.network().load_state_dict(state["net"])
    model.network().eval()
    model.index_catalogue(catalogue.images)
    model.meta = {"run_name": run_name, "epochs_trained": state["epoch"] + 1, "catalogue_uri": catalogue_uri,
                  "recommender": to_dict(rec)}
    model_uri = LakePaths.of(cfg).recommender_model(rec.model)
    version = model.save(model_uri)
    return RecommenderTrainResult(model_uri=model_uri, model_version=version, kind=rec.model, run_name=run_name,
                                  run_path=str(result.path), epochs=state["epoch"] + 1, history=state["history"],
                                  train_seconds=seconds, trained_now=trained_now)


def _train_in_process(cfg: Config, catalogue_uri: str, catalogue: Catalogue) -> RecommenderTrainResult:
    rec = cfg.recommender
    model = recommender_class(rec.model).from_config(rec)
    eval_users = eval_user_sample(catalogue.num_users, rec.eval_users, rec.seed)

    def on_epoch(metrics: dict) -> None:
        metrics["val_auc_sampled"] = validation_auc(model.score, catalogue, eval_users, rec.seed)
        print(f"[recommender] {rec.model} epoch {metrics['epoch'] + 1} loss={metrics['loss']:.4f} "
              f"val_auc_sampled={metrics['val_auc_sampled']:.4f} ({metrics['seconds']:.1f}s)", flush=True)

    began = time.perf_counter()
    history = model.fit(catalogue, on_epoch)
    seconds = time.perf_counter() - began
    model.meta.update({"epochs_trained": len(history), "catalogue_uri": catalogue_uri, "recommender": to_dict(rec)})
    model_uri = LakePaths.of(cfg).recommender_model(rec.model)
    version = model.save(model_uri)
    return RecommenderTrainResult(model_uri=model_uri, model_version=version, kind=rec.model, run_name="",
                                  run_path="", epochs=len(history), history=history, train_seconds=seconds)


def train_recommender(cfg: Config, catalogue_uri: str | None = None, catalogue: Catalogue | None = None,
                      ray_address: str | None = None) -> RecommenderTrainResult:
    """Train cfg.recommender.model on the catalogue and write it to the model URI (see the module docstring).
    `catalogue` may be passed when already loaded (with images) to skip reading it again in the driver.
    Distributed models start (or join) Ray here, after the inputs are checked, unless their run has finished (its
    last checkpoint is the model); in-process ones never touch it."""
    cls = recommender_class(cfg.recommender.model)
    catalogue_uri = catalogue_uri or cfg.data.catalogue_uri
    read_meta(catalogue_uri)  # a clear error when there is no catalogue
    if catalogue is None or (cls.needs_images and len(catalogue.images) == 0):
        catalogue = load_catalogue(catalogue_uri, with_images=cls.needs_images)
    if cls.distributed:
        return _train_distributed(cfg, catalogue_uri, catalogue, ray_address)
    return _train_in_process(cfg, catalogue_uri, catalogue)
