"""Train the amortised designer on the lake's recommender and generator with Ray Train (`fashiongen train-designer`).

Each worker builds the preference engine once (frozen recommender, G, Φ, D, and the guard when on) and runs the
pure-torch epoch of `designer_steps` on its share of the (user, category) pairs, DDP averaging the designer's
gradients. Per epoch rank 0 checkpoints the designer and its optimiser (`ray_train.save_and_report`); a run named
by the models and settings resumes from its last checkpoint, and FailureConfig retries a crashed worker from
there (the epoch's pair order is seeded by (seed, epoch), so a resumed run is the uninterrupted one).

Users are split by a digest of their id: `designer.validation` of them are never trained on and give the reported
objective, beside that of the engine's own prior starts (the search's z0) on the same pairs. Writes
`LakePaths.designer_model()`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from fashiongen import faults
from fashiongen.config import Config, DesignConfig, DesignerConfig, from_dict, to_dict
from fashiongen.lake.layout import id_key
from fashiongen.lake.paths import LakePaths
from fashiongen.training.ray_train import final_state, finished_run, resumed_state, run_config, save_and_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DesignerResult:
    model_uri: str
    model_version: str
    run_name: str
    train_users: int
    validation_users: int
    validation_objective: float  # the designer's latents on users it never saw
    prior_objective: float  # the search's z0 (prior draws) on the same pairs
    history: list[dict]


def split_users(user_ids: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) user indices: validation = ids whose digest falls in the first `share` of the range."""
    bucket = np.array([int(id_key("designer-split", str(u))[:8], 16) / 16 ** 8 for u in user_ids])
    return np.flatnonzero(bucket >= share), np.flatnonzero(bucket < share)


def build_engine(rec_uri: str, gen_uri: str, catalogue_uri: str, design: dict[str, Any], guard_uri: str):
    """(engine, recommender, generator, catalogue): the preference engine the designer is trained against, on this
    process's device; the search settings with mode optimise (the objective is the search's)."""
    from fashiongen.data.contract import load_catalogue
    from fashiongen.generation.engine import PreferenceEngine, category_mapping
    from fashiongen.models.classifier import load_classifier
    from fashiongen.models.contract import load_generator, load_recommender

    settings = replace(from_dict(DesignConfig, design), mode="optimise", warm_start=0)
    recommender, generator = load_recommender(rec_uri), load_generator(gen_uri)
    catalogue = load_catalogue(catalogue_uri, with_images=False)
    engine = PreferenceEngine(recommender, generator, settings,
                              category_mapping(catalogue.categories, generator.categories)[catalogue.item_category],
                              device="cuda" if torch.cuda.is_available() else "cpu",
                              guard=load_classifier(guard_uri) if guard_uri else None,
                              guard_class=category_mapping(generator.categories, catalogue.categories))
    return engine, recommender, generator, catalogue


def new_designer(recommender, generator, settings: DesignConfig, designer: DesignerConfig):
    from fashiongen.models.designer import AmortisedDesigner

    torch.manual_seed(designer.seed)
    model = AmortisedDesigner(recommender.user_vectors().shape[1], len(generator.categories),
                              int(generator.latent_dim), settings.restarts, designer.hidden)
    model.bind(recommender, generator)
    return model


def train_loop(config: dict[str, Any]) -> None:
    """Ray Train worker: per epoch this rank's share of the training pairs, then (rank 0) the validation objective
    and the checkpoint."""
    import ray.train
    import torch.distributed as dist
    from ray.train.torch import prepare_model

    from fashiongen.training.designer_steps import (designer_epoch, designer_latents, epoch_order, mean_objective,
                                                    pair_grid)

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(max(1, int(config["threads"])))
    settings, designer_cfg = from_dict(DesignConfig, config["design"]), from_dict(DesignerConfig, config["designer"])
    engine, recommender, generator, _ = build_engine(config["rec_uri"], config["gen_uri"], config["catalogue_uri"],
                                                  config["design"], config["guard_uri"])
    designer = new_designer(recommender, generator, settings, designer_cfg).to(engine.device)
    optimiser = torch.optim.Adam(designer.parameters(), lr=designer_cfg.lr)
    start = 0
    state = resumed_state()
    if state:
        designer.load_state_dict(state["designer"])
        optimiser.load_state_dict(state["optimiser"])
        start = state["epoch"] + 1
    model = prepare_model(designer, move_to_device=False)
    num_cats = len(engine.categories)
    train_u, train_c = pair_grid(np.asarray(config["train_users"]), num_cats)
    val_users = np.asarray(config["validation_users"])
    for epoch in range(start, designer_cfg.epochs):
        if rank == 0:
            faults.fail_once_at_epoch(config["faults"], "designer.epoch", epoch, config["output_uri"])
        began = time.perf_counter()
        order = epoch_order(len(train_u), designer_cfg.seed, epoch, rank, world)
        parts = designer_epoch(engine, model, optimiser, train_u, train_c, order, designer_cfg)
        values = torch.tensor([parts.get(k, 0.0) for k in ("objective", "score", "realism", "prior", "repel")],
                              dtype=torch.float64)
        if world > 1 and dist.is_initialized():
            dist.all_reduce(values)
            values /= world
        seconds = time.perf_counter() - began
        metrics = {"epoch": epoch, "start_epoch": start, **dict(zip(("objective", "score", "realism", "prior",
                                                                      "repel"), values.tolist())),
                   "seconds": seconds, "pairs_per_s": len(order) * world / max(seconds, 1e-9)}
        if rank == 0 and len(val_users):
            val = pair_grid(val_users, num_cats)
            metrics["val_objective"] = mean_objective(engine, designer_latents(engine, designer, *val), *val)
            print(f"[designer] epoch {epoch + 1}/{designer_cfg.epochs} objective={metrics['objective']:.3f} "
                  f"validation={metrics['val_objective']:.3f} pairs/s={metrics['pairs_per_s']:.0f} "
                  f"({seconds:.0f}s, {world} worker(s))", flush=True)
        save_and_report(metrics, rank, lambda: {"epoch": epoch, "designer": designer.state_dict(),
                                                "optimiser": optimiser.state_dict()})


def default_run_name(designer, cfg: Config) -> str:
    """Stable for the same recommender space, generator, users split and settings: a rerun resumes the run (more
    epochs continue it); a new recommender space or generator starts a new one."""
    models = {k: designer.meta[k] for k in ("recommender_space", "generator_version")}  # not θ: nightly moves it
    key = json.dumps([models, to_dict(cfg.design), {k: v for k, v in to_dict(cfg.designer).items()
                                                           if k != "epochs"}], sort_keys=True, default=str)
    return f"designer-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def train_designer_on_lake(cfg: Config, ray_address: str | None = None) -> DesignerResult:
    """Train (or resume) the designer through Ray Train for the lake's recommender (generation.recommender_uri when
    set, e.g. a nightly model) and generator, then judge it in this process on the validation users."""
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    from fashiongen.generation.engine import initial_latents
    from fashiongen.generation.job import check_models
    from fashiongen.runtime import ensure_ray
    from fashiongen.training.classifier import ensure_classifier
    from fashiongen.training.designer_steps import designer_latents, mean_objective, pair_grid

    paths = LakePaths.of(cfg)
    rec_uri, gen_uri = paths.design_models(cfg.recommender.model)
    guard_uri = ""
    if cfg.design.category_guard:
        ensure_classifier(cfg, role="guard")
        guard_uri = paths.classifier_model("guard")
    engine, recommender, generator, catalogue = build_engine(rec_uri, gen_uri, cfg.data.catalogue_uri,
                                                             to_dict(cfg.design), guard_uri)
    check_models(recommender, generator, catalogue, rec_uri, gen_uri)
    train, validation = split_users(catalogue.user_ids, cfg.designer.validation)
    designer = new_designer(recommender, generator, engine.settings, cfg.designer)
    run_name = cfg.train.run_name or default_run_name(designer, cfg)
    result = finished_run(cfg.train, run_name, cfg.designer.epochs)
    if result is None:
        ensure_ray(ray_address)
        # One CPU per worker unless train.cpus_per_worker says more: a designer retrained inside the nightly run
        # shares its Ray with the designs job's actors, and a worker waiting for the whole node would never start.
        threads = cfg.train.cpus_per_worker or 1
        result = TorchTrainer(
            train_loop,
            train_loop_config={"rec_uri": rec_uri, "gen_uri": gen_uri, "catalogue_uri": cfg.data.catalogue_uri,
                               "design": to_dict(cfg.design), "designer": to_dict(cfg.designer),
                               "guard_uri": guard_uri, "train_users": train.tolist(),
                               "validation_users": validation.tolist(), "threads": threads, "faults": faults.planned(),
                               "output_uri": paths.training_run("designer", run_name)},
            scaling_config=ScalingConfig(num_workers=cfg.train.num_workers, use_gpu=cfg.train.use_gpu,
                                         resources_per_worker={"CPU": threads}),
            run_config=run_config(cfg.train, run_name),
        ).fit()
    state = final_state(result, f"designer run {run_name!r} under {cfg.train.storage_path!r}", "designer.epochs")
    designer.load_state_dict(state["designer"])
    designer.eval()
    users, cats = pair_grid(validation if len(validation) else train[:1], len(generator.categories))
    learned = mean_objective(engine, designer_latents(engine, designer, users, cats), users, cats)
    prior = torch.stack([initial_latents(f"{u}/{c}", "2000-01-01", engine.settings.restarts,
                                         int(generator.latent_dim), engine.settings.init_std,
                                         engine.settings.truncation) for u, c in zip(users, cats)])
    baseline = mean_objective(engine, prior, users, cats)
    designer.meta = {**designer.meta, "run_name": run_name, "epochs_trained": state["epoch"] + 1}
    uri = paths.designer_model()
    version = designer.save(uri)
    frame = result.metrics_dataframe
    history = frame.to_dict("records") if frame is not None else []
    return DesignerResult(uri, version, run_name, len(train), len(validation), learned, baseline, history)
