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
   `write_parquet` into the attempt's folder of the designs table, in files of about `generation.rows_per_file` rows.
3. Nightly semantics. Ray Data checkpointing on `pair_id`: a rerun after a crash computes only the pairs not yet
   written. `publish_run` checks exactly one row per (pair, rank) and commits the date as one snapshot of the
   Iceberg table: readers never see a partial run. A published date is a no-op unless `force`, which replaces the
   date in one snapshot.
4. Failures. A pair the engine cannot design (unknown user or category, non-finite vector) is written with its
   reason to `_work/.../failures/`, counted in the summary, and the rest of the run still publishes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass

from fashiongen import faults, storage
from fashiongen.config import Config, to_dict
from fashiongen.generation.actor import DesignActor, encode_designs
from fashiongen.generation.plan import (DIGESTS_ATTACHMENT, GenerationError, designed_digests,
                                        pq_rows, previous_digests, read_id_list, select_users, user_digests,
                                        write_pairs)
from fashiongen.generation.progress import PROGRESS_SECONDS, ProgressCounter, ProgressPrinter
from fashiongen.generation.summary import FAILURES_DIR, RunSummary, load_summary, save_summary, summarise
from fashiongen.lake import layout, publish
from fashiongen.lake.paths import LakePaths
from fashiongen.lake.table import Lake
from fashiongen.models.classifier import load_catalogue_classifier, trained_on
from fashiongen.runtime import ensure_ray

log = logging.getLogger(__name__)


LIGHT_CPUS = 0.25  # logical CPUs of each read, PNG-encode and write task: I/O-bound, and never starved by actors
FILTER_CPUS = 1.0  # Ray Data's checkpoint-filter actor on a resume (it always asks for one CPU; its pool is 1)
TASK_CPUS = 1.0  # Ray Data's own tasks that take no resource arguments (file listing, repartition) ask for one


@dataclass(frozen=True)
class Pool:
    """The design actors' scheduling, sized from what the cluster really has."""

    actors: int
    gpus_per_actor: float
    cpus_per_actor: float


def pool_size(cfg: Config) -> Pool:
    """One actor per GPU when the cluster has GPUs, else `generation.actors` CPU actors. On CPUs the actors' logical
    CPUs are what is left after Ray Data's checkpoint filter (a resume) and one of its 1-CPU tasks, so a resume on a
    2-CPU Ray cannot deadlock with every CPU held by actors while the file listing waits; on 2 CPUs that leaves the
    actor 0 logical CPUs: it still runs (threads are the OS's), it just reserves none."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus and cfg.generation.use_gpu:
        return Pool(cfg.generation.actors or gpus, 1.0, 0.0)
    actors = max(1, cfg.generation.actors)
    cpus = float(resources.get("CPU", 0))
    if cpus < FILTER_CPUS + TASK_CPUS:
        raise GenerationError(f"the Ray cluster has {cpus:g} CPUs: the designs job needs at least 2 (Ray Data's "
                              "checkpoint filter and its tasks each take one)")
    return Pool(actors, 0.0, min(1.0, (cpus - FILTER_CPUS - TASK_CPUS) / actors))


def _visual_scorer(key: str, uri: str, catalogue, taken: dict[str, str], seed: int):
    """The visual recommender at `uri` that setting `key` names; GenerationError when it is missing, cannot score
    images, belongs to another catalogue, or is one of `taken` (model version -> what that model is here)."""
    from fashiongen.models.contract import VisualRecommender, load_recommender

    if not storage.exists(uri):
        raise GenerationError(f"{key} names {uri!r}, which has no checkpoint: train it apart (fashiongen "
                              f"train-recommender recommender.seed={seed} recommender.model_uri={uri}) or remove it "
                              f"from {key}")
    scorer = load_recommender(uri)
    if not isinstance(scorer, VisualRecommender):
        raise GenerationError(f"{key}: {uri!r} is a {scorer.kind!r} recommender, which cannot score new images: "
                              "train a visual one (recommender.model=dvbpr)")
    if scorer.model_version in taken:
        raise GenerationError(f"{key}: {uri!r} is {taken[scorer.model_version]} ({scorer.model_version}): it must "
                              "be trained apart (another seed)")
    if (len(scorer.user_vectors()), len(scorer.item_features())) != (catalogue.num_users, catalogue.num_items):
        raise GenerationError(f"{key}: {uri!r} was trained on another catalogue: retrain it on data.catalogue_uri")
    return scorer


def load_judge(cfg: Config, recommender, catalogue):
    """The held-out scorer generation.judge_uri names (None when it names none), checked by `_visual_scorer`: it
    must not be the very model the designs climb."""
    uri = cfg.generation.judge_uri
    if not uri:
        return None
    return _visual_scorer("generation.judge_uri", uri, catalogue,
                          {recommender.model_version: "the recommender the designs climb"}, seed=1)


def load_ensemble(cfg: Config, recommender, catalogue, judge) -> dict:
    """URI -> the visual recommender of each checkpoint generation.ensemble_uris names, each checked by
    `_visual_scorer`: trained apart from the recommender, from the judge (never climbed) and from the other members."""
    taken = {recommender.model_version: "the recommender the designs climb",
             **({judge.model_version: "the held-out judge, which must never be climbed"} if judge else {})}
    members = {}
    for uri in (u.strip() for u in cfg.generation.ensemble_uris.split(",") if u.strip()):
        members[uri] = _visual_scorer("generation.ensemble_uris", uri, catalogue, taken, seed=2)
        taken[members[uri].model_version] = "listed twice"
    return members


def load_designer_for(cfg: Config, recommender, generator) -> tuple[str, str]:
    """(URI, version) of the designer design.mode=amortised(+refine) uses (empty in the other modes), checked
    against the models; GenerationError when it is missing or was trained for another recommender space or
    generator."""
    from fashiongen.generation.engine import AMORTISED
    from fashiongen.models.designer import DesignerError, load_designer

    if cfg.design.mode not in AMORTISED:
        return "", ""
    uri = LakePaths.of(cfg).designer_model()
    if not storage.exists(uri):
        raise GenerationError(f"design.mode={cfg.design.mode} needs a trained designer at {uri!r}: train it with "
                              "fashiongen train-designer (or set generation.designer_uri), or use design.mode=optimise")
    designer = load_designer(uri)
    try:
        designer.check_compatible(recommender, generator)
    except DesignerError as exc:
        raise GenerationError(f"{uri}: {exc}") from None
    return uri, designer.model_version


def check_models(recommender, generator, catalogue, rec_uri: str, gen_uri: str) -> None:
    """GenerationError naming the checkpoint when the models cannot design for this catalogue."""
    from fashiongen.generation.engine import category_mapping
    from fashiongen.models.contract import VisualRecommender

    if not isinstance(recommender, VisualRecommender):
        raise GenerationError(f"{rec_uri!r} is a {recommender.kind!r} recommender, which cannot score new images: "
                              "designs need a visual one (train recommender.model=dvbpr, or set "
                              "generation.recommender_uri)")
    users, items = len(recommender.user_vectors()), len(recommender.item_features())
    if (users, items) != (catalogue.num_users, catalogue.num_items):
        raise GenerationError(f"{rec_uri!r} was trained on another catalogue ({users} users, {items} items; "
                              f"{catalogue.meta.get('source', 'this one')} has {catalogue.num_users} users, "
                              f"{catalogue.num_items} items): retrain it on data.catalogue_uri")
    if not (category_mapping(catalogue.categories, generator.categories) >= 0).any():
        raise GenerationError(f"{gen_uri!r} draws {list(generator.categories)}, none of the catalogue's categories "
                              f"{list(catalogue.categories)}: retrain it with fashiongen train-gan")


def run_generation(cfg: Config, force: bool = False, ray_address: str | None = None) -> RunSummary:
    """Plan, design, write and publish one run date (`cfg.run_date`, default today UTC); see the module docstring.
    Ray is started (or joined) only once every input has been checked, and only when there is a design to compute."""
    from fashiongen.data.contract import load_catalogue
    from fashiongen.models.contract import load_generator, load_recommender

    run_date = layout.validate_run_date(cfg.run_date or layout.today_utc())
    paths, lake = LakePaths.of(cfg), Lake.of(cfg)
    table_at = lake.run_label(run_date)
    if publish.run_status(lake, run_date) == publish.RunStatus.COMPLETE and not force:
        log.info("designs for %s are already published in %s: nothing to do (force=true recomputes)",
                 run_date, table_at)
        saved = load_summary(cfg, run_date)
        if saved is not None:
            return dataclasses.replace(saved, action="skip", pairs_this_attempt=0, seconds=0.0)
        summary = summarise(RunSummary(run_date=run_date, action="skip", run_uri=table_at), cfg, run_date)
        save_summary(cfg, summary)
        return summary
    # Every input is loaded and checked before the lake is touched: a bad checkpoint never costs a published run.
    rec_uri, gen_uri = paths.design_models(cfg.recommender.model)
    recommender, generator = load_recommender(rec_uri), load_generator(gen_uri)
    catalogue = load_catalogue(cfg.data.catalogue_uri, with_images=False)
    check_models(recommender, generator, catalogue, rec_uri, gen_uri)
    judge = load_judge(cfg, recommender, catalogue)
    ensemble = {uri: m.model_version for uri, m in load_ensemble(cfg, recommender, catalogue, judge).items()}
    designer_uri, designer_version = load_designer_for(cfg, recommender, generator)
    model_version = f"{recommender.model_version}+{generator.model_version}"
    properties = {"design.mode": cfg.design.mode, "judge_version": judge.model_version if judge else "",
                  "designer_version": designer_version, "ensemble_versions": ",".join(ensemble.values())}
    del judge
    guard_uri = paths.classifier_model("guard") if cfg.design.category_guard else ""
    record = trained_on(catalogue.meta)
    for role, needed in (("guard", bool(guard_uri)), ("judge", bool(cfg.generation.realism_sample))):
        if needed:  # trained by `fashiongen train-classifiers`, never here
            load_catalogue_classifier(paths.classifier_model(role), record, role)
    digests = user_digests(recommender.user_vectors().detach().cpu().numpy(), catalogue.user_ids)
    del recommender
    listed, dropped = read_id_list(cfg.generation.pairs_uri, ["user_id", "category"]) \
        if cfg.generation.pairs_uri else (None, 0)
    lake.create_table()  # a catalog that cannot hold the table fails here, before any design is computed
    plan = publish.prepare_run(lake, run_date, force=force)
    summary = RunSummary(run_date=run_date, action=plan.action, run_uri=table_at)
    if listed is not None:
        users = listed.group_by("user_id", use_threads=False).aggregate([])
        why = f"pairs listed in {cfg.generation.pairs_uri}" + (f" ({dropped} duplicate rows dropped)" if dropped else "")
    else:
        users, why = select_users(cfg, run_date, digests)
    summary.plan = why
    log.info("designs run %s: %s (%d users x %d categories)", run_date, why, users.num_rows, len(generator.categories))
    pairs_uri = write_pairs(cfg, run_date, users, list(generator.categories), listed, ray_address)
    pairs_total = pq_rows(pairs_uri)

    plan_faults = faults.planned()  # read once: the driver's crash points and the actors' share one plan
    faults.fail_at(plan_faults, "generate.before_pipeline")
    started = time.perf_counter()
    staged = publish.dedupe_check(lake, run_date)
    if staged.pairs < pairs_total or staged.uncommitted:
        ensure_ray(ray_address)
        write_designs(cfg, plan, pairs_uri, todo=max(pairs_total - staged.pairs, 0), actor_kwargs={
            "recommender_uri": rec_uri, "generator_uri": gen_uri, "catalogue_uri": cfg.data.catalogue_uri,
            "design": to_dict(cfg.design), "run_date": run_date, "model_version": model_version,
            "failures_uri": paths.work(run_date, FAILURES_DIR), "faults": plan_faults,
            "judge_uri": cfg.generation.judge_uri, "guard_uri": guard_uri, "designer_uri": designer_uri,
            "ensemble_uris": list(ensemble)})
        summary.pairs_this_attempt = publish.dedupe_check(lake, run_date).pairs - staged.pairs
    else:  # a resume after every design was written (a crash at publish): nothing to compute, no Ray to start
        log.info("designs run %s: all %d pairs are staged already; publishing them", run_date, pairs_total)
    summary.seconds = time.perf_counter() - started
    summary.pairs_total = pairs_total
    faults.fail_at(plan_faults, "generate.before_digests")
    digests_uri = write_digests(paths, run_date, designed_digests(previous_digests(lake, run_date), digests, users))
    faults.fail_at(plan_faults, "generate.before_publish")
    publish.publish_run(lake, run_date, model_version=model_version, config=cfg,
                        attachments={DIGESTS_ATTACHMENT: digests_uri}, replace=plan.previous_status ==
                        publish.RunStatus.COMPLETE, properties=properties)
    for name in storage.list_files(paths.run_state(run_date)):  # digests of replaced or abandoned attempts
        if storage.join(paths.run_state(run_date), name) != digests_uri:
            storage.delete(storage.join(paths.run_state(run_date), name))
    faults.fail_at(plan_faults, "generate.after_publish")
    summary = summarise(summary, cfg, run_date)
    save_summary(cfg, summary)
    return summary


def write_designs(cfg: Config, plan: publish.RunPlan, pairs_uri: str, todo: int, actor_kwargs: dict) -> None:
    """The Ray Data pipeline: design the pairs at `pairs_uri` that the run's checkpoint has not seen (`todo` of
    them) in a pool of `DesignActor`s, encode them, and stage them as Parquet files under the run's URI."""
    import ray
    import ray.data
    from ray.data.checkpoint import CheckpointConfig

    ctx = ray.data.DataContext.get_current()
    ckpt_fs, ckpt_path = storage.filesystem(plan.checkpoint_uri)
    ctx.checkpoint_config = CheckpointConfig(id_column="pair_id", checkpoint_path=ckpt_path,
                                             override_filesystem=ckpt_fs, delete_checkpoint_on_success=False)
    pool = pool_size(cfg)
    ctx.checkpoint_config.checkpoint_actor_pool_max_size = 1
    pairs_fs, pairs_path = storage.filesystem(pairs_uri)
    out_fs, out_path = storage.filesystem(plan.run_uri)
    counter = ray.remote(num_cpus=0)(ProgressCounter).remote()
    try:
        designs = ray.data.read_parquet(pairs_path, filesystem=pairs_fs, ray_remote_args={"num_cpus": LIGHT_CPUS}) \
            .repartition(target_num_rows_per_block=cfg.generation.pairs_per_block) \
            .map_batches(DesignActor, batch_format="pyarrow", batch_size=cfg.design.batch_pairs,
                         compute=ray.data.ActorPoolStrategy(size=pool.actors), num_gpus=pool.gpus_per_actor,
                         num_cpus=pool.cpus_per_actor, fn_constructor_kwargs={**actor_kwargs, "progress": counter}) \
            .map_batches(encode_designs, batch_format="pyarrow", num_cpus=LIGHT_CPUS,
                         fn_kwargs={"lake_uri": cfg.lake_uri, "write_objects": cfg.generation.write_image_objects})
        with ProgressPrinter(lambda: ray.get(counter.counts.remote(), timeout=PROGRESS_SECONDS), plan.run_date,
                             todo=todo):
            designs.write_parquet(out_path, filesystem=out_fs, min_rows_per_file=cfg.generation.rows_per_file,
                                  ray_remote_args={"num_cpus": LIGHT_CPUS})
    finally:
        ctx.checkpoint_config = None
        ray.kill(counter)


def write_digests(paths: LakePaths, run_date: str, table) -> str:
    """The user digests incremental runs compare against are part of the run's commit: written before it under a
    content-derived name (a published run's file is never overwritten, even by a `--force` being computed), then
    named with its checksum in the run's snapshot, so a run is published with its digests or not at all."""
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    uri = paths.run_state(run_date, f"user_digests-{hashlib.sha256(buffer.getvalue()).hexdigest()[:16]}.parquet")
    storage.write_bytes(uri, buffer.getvalue())
    return uri
