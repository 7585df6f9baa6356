"""The personalised-catalogue job: Ray Data fans the preference engine out over (user, category) pairs and
writes designs to the lake. Safe to rerun nightly.

    summary = run_generation(cfg, force=False)

1. Users. All catalogue users, a listed subset (`generation.users_uri`: Parquet or CSV with `user_id`), only the
   users whose preference vector changed since the last published run (`generation.incremental=true`), or an
   explicit pair list (`generation.pairs_uri`: `user_id`, `category`). The user list is O(users) on the driver;
   the pairs (users x categories) are built and written by Ray Data under `<lake>/_work/designs/run_date=D/pairs/`
   and only ever *read* by the generation pipeline, each with a stable `pair_id`.
2. Fan-out. `read_parquet(pairs)` -> `map_batches(DesignActor, compute=ActorPoolStrategy(size=n))`: models are
   loaded once per actor, one actor per GPU when the cluster has GPUs, else CPU actors ->
   `map_batches(encode_designs)` as CPU tasks, so PNG encoding never holds a GPU actor ->
   `write_parquet(<lake>/designs/run_date=D/)` in files of about `generation.rows_per_file` rows.
3. Nightly semantics. Ray Data checkpointing on `pair_id`: a rerun after a crash computes only the pairs not yet
   written. `publish_run` checks exactly one row per (pair, rank) and writes the `_SUCCESS` manifest last;
   readers list only runs with a manifest. A completed date is a no-op unless `force`.
4. Failures. A pair the engine cannot design (unknown user or category, non-finite vector) is written with its
   reason to `_work/.../failures/`, counted in the summary, and the rest of the run still publishes.
"""
from __future__ import annotations

import logging
import time

from fashiongen import faults, storage
from fashiongen.config import Config, to_dict
from fashiongen.generation.actor import DesignActor, encode_designs
from fashiongen.generation.plan import (DIGESTS_ATTACHMENT, DIGESTS_FILE, designed_digests, pq_rows, previous_digests, read_id_list,
                                        select_users, user_digests, write_pairs)
from fashiongen.generation.summary import FAILURES_DIR, RunSummary, summarise
from fashiongen.lake import layout, publish
from fashiongen.lake.paths import LakePaths

log = logging.getLogger(__name__)


def _pool_size(cfg: Config) -> tuple[int, float]:
    """(actors, GPUs per actor): one actor per GPU when the cluster has GPUs, else `generation.actors` CPU actors."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus and cfg.generation.use_gpu:
        return (cfg.generation.actors or gpus), 1.0
    return max(1, cfg.generation.actors), 0.0


def run_generation(cfg: Config, force: bool = False) -> RunSummary:
    """Plan, design, write and publish one run date (`cfg.run_date`, default today UTC); see the module docstring."""
    import ray
    import ray.data
    from ray.data.checkpoint import CheckpointConfig

    from fashiongen.data.contract import load_catalogue
    from fashiongen.models.contract import load_generator, load_recommender

    run_date = layout.validate_run_date(cfg.run_date or layout.today_utc())
    paths = LakePaths.of(cfg)
    plan = publish.prepare_run(cfg.lake_uri, run_date, force=force)
    summary = RunSummary(run_date=run_date, action=plan.action, run_uri=plan.run_uri)
    if plan.action == "skip":
        log.info("designs for %s are already published at %s: nothing to do (force=true recomputes)",
                 run_date, plan.run_uri)
        return summarise(summary, cfg, run_date)
    if plan.action == "start":
        storage.delete(paths.work(run_date))
    rec_uri, gen_uri = paths.design_models(cfg.recommender.model)
    recommender, generator = load_recommender(rec_uri), load_generator(gen_uri)
    model_version = f"{recommender.model_version}+{generator.model_version}"
    catalogue = load_catalogue(cfg.data.catalogue_uri, with_images=False)
    digests = user_digests(recommender.user_vectors().detach().cpu().numpy(), catalogue.user_ids)
    del recommender
    users, why = select_users(cfg, run_date, digests)
    log.info("designs run %s: %s (%d users x %d categories)", run_date, why, users.num_rows, len(generator.categories))
    pairs_uri = write_pairs(cfg, run_date, users, list(generator.categories))

    ctx = ray.data.DataContext.get_current()
    ckpt_fs, ckpt_path = storage.filesystem(plan.checkpoint_uri)
    ctx.checkpoint_config = CheckpointConfig(id_column="pair_id", checkpoint_path=ckpt_path,
                                             override_filesystem=ckpt_fs, delete_checkpoint_on_success=False)
    actors, gpus = _pool_size(cfg)
    pairs_fs, pairs_path = storage.filesystem(pairs_uri)
    out_fs, out_path = storage.filesystem(plan.run_uri)
    pairs_total = pq_rows(pairs_uri)
    started = time.perf_counter()
    before = publish.dedupe_check(cfg.lake_uri, run_date).pairs
    try:
        ray.data.read_parquet(pairs_path, filesystem=pairs_fs) \
            .repartition(target_num_rows_per_block=cfg.generation.pairs_per_block) \
            .map_batches(DesignActor, batch_format="pyarrow", batch_size=cfg.design.batch_pairs,
                         compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=gpus,
                         fn_constructor_kwargs={
                             "recommender_uri": rec_uri, "generator_uri": gen_uri,
                             "catalogue_uri": cfg.data.catalogue_uri, "design": to_dict(cfg.design),
                             "run_date": run_date, "model_version": model_version,
                             "failures_uri": paths.work(run_date, FAILURES_DIR), "faults": faults.planned()}) \
            .map_batches(encode_designs, batch_format="pyarrow", num_cpus=1,
                         fn_kwargs={"lake_uri": cfg.lake_uri, "write_objects": cfg.generation.write_image_objects}) \
            .write_parquet(out_path, filesystem=out_fs, min_rows_per_file=cfg.generation.rows_per_file)
    finally:
        ctx.checkpoint_config = None
    summary.seconds = time.perf_counter() - started
    summary.pairs_total = pairs_total
    summary.pairs_this_attempt = publish.dedupe_check(cfg.lake_uri, run_date).pairs - before
    plan_faults = faults.planned()
    faults.fail_at(plan_faults, "generate.before_digests")
    # The digests incremental runs compare against are part of the run's commit: written first, then named (with
    # their checksum) in the manifest, so a run is published with its digests or not at all.
    designed = users if not cfg.generation.pairs_uri else \
        read_id_list(cfg.generation.pairs_uri, ["user_id"]).group_by("user_id").aggregate([])
    digests_uri = paths.work(run_date, DIGESTS_FILE)
    storage.write_table(designed_digests(previous_digests(cfg.lake_uri, run_date), digests, designed), digests_uri)
    faults.fail_at(plan_faults, "generate.before_publish")
    publish.publish_run(cfg.lake_uri, run_date, model_version=model_version, config=cfg,
                        attachments={DIGESTS_ATTACHMENT: digests_uri})
    return summarise(summary, cfg, run_date)
