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

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fashiongen import storage
from fashiongen.config import Config, GenerationConfig, design_model_uris, from_dict, to_dict
from fashiongen.errors import FashiongenError
from fashiongen.lake import layout, publish, reader

log = logging.getLogger(__name__)

PAIRS_SCHEMA = pa.schema([("pair_id", pa.string()), ("user_id", pa.string()), ("category", pa.string())])
FAILURES_SCHEMA = PAIRS_SCHEMA.append(pa.field("reason", pa.string()))
RAW_COLUMNS = ("image_raw", "image_shape")  # between the actor and the PNG stage only


class GenerationError(FashiongenError, RuntimeError):
    """A generation run that cannot start or cannot publish; the message says why and what to do."""


@dataclass
class RunSummary:
    """What one invocation did, printed at the end and returned to jobs/tests."""

    run_date: str
    action: str  # skip | start | resume
    run_uri: str
    pairs_total: int = 0
    pairs_done: int = 0
    pairs_failed: int = 0
    pairs_this_attempt: int = 0
    seconds: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    lift: dict[str, float] = field(default_factory=dict)
    oracle_lift: dict[str, float] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_this_attempt / self.seconds if self.seconds else 0.0

    def to_markdown(self) -> str:
        lines = [f"### Designs run {self.run_date} ({self.action})", "",
                 f"- output: `{self.run_uri}`",
                 f"- pairs: {self.pairs_done} done, {self.pairs_failed} failed, {self.pairs_total} planned; "
                 f"{self.pairs_this_attempt} designed now in {self.seconds:.1f} s ({self.pairs_per_second:.2f} pairs/s)"]
        for reason, n in sorted(self.failure_reasons.items()):
            lines.append(f"  - failed ({n}): {reason}")
        for name, stats in (("lift, learned scorer (best design - best real item)", self.lift),
                            ("lift, oracle (true preference, simulated shoppers)", self.oracle_lift)):
            if stats:
                lines.append(f"- {name}: " + ", ".join(f"{k} {v:+.3f}" if k != "share>0" else f"{k} {v:.1%}"
                                                        for k, v in stats.items()))
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ locations
def work_uri(lake_uri: str, run_date: str, *parts: str) -> str:
    """The run's working area (pairs, failures, user digests): outside designs/, never read by readers."""
    return storage.join(lake_uri, "_work", layout.DESIGNS_DIR, f"run_date={layout.validate_run_date(run_date)}", *parts)


# ------------------------------------------------------------------------------------------ users and pairs
def user_digests(theta: np.ndarray, user_ids: np.ndarray) -> pa.Table:
    """(user_id, theta_digest): a digest of each user's vector, to find users whose taste changed."""
    rounded = np.ascontiguousarray(np.round(np.asarray(theta, np.float32), 5))
    digests = [hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest() for row in rounded]
    return pa.table({"user_id": pa.array(user_ids.astype(str)), "theta_digest": pa.array(digests)})


def _read_id_list(uri: str, columns: list[str]) -> pa.Table:
    """A Parquet or CSV file with the given columns, as strings."""
    if uri.endswith(".csv"):
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(pa.BufferReader(storage.read_bytes(uri)))
    else:
        table = storage.read_table(uri)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise GenerationError(f"{uri!r} has no column(s) {missing}: it must list {columns}")
    return pa.table({c: pc.cast(table.column(c), pa.string()) for c in columns})


def _previous_digests(lake_uri: str, run_date: str) -> pa.Table | None:
    for date in reversed(reader.list_complete_runs(lake_uri)):
        if date < run_date and storage.exists(work_uri(lake_uri, date, "user_digests.parquet")):
            return storage.read_table(work_uri(lake_uri, date, "user_digests.parquet"))
    return None


def designed_digests(previous: pa.Table | None, current: pa.Table, designed: pa.Table) -> pa.Table:
    """Per user, the digest of the vector behind their latest published designs: `previous` updated with the
    current digests of the users designed now. Incremental runs compare against this."""
    now = current.filter(pc.is_in(current.column("user_id"), designed.column("user_id")))
    if previous is None:
        return now
    kept = previous.filter(pc.invert(pc.is_in(previous.column("user_id"), now.column("user_id"))))
    return pa.concat_tables([kept.select(now.column_names), now])


def select_users(cfg: Config, run_date: str, digests: pa.Table) -> tuple[pa.Table, str]:
    """The users to design for this run and a description of why (capped at generation.max_users)."""
    users, why = _selected_users(cfg, run_date, digests)
    cap = cfg.generation.max_users
    if 0 < cap < users.num_rows:
        ids = users.column("user_id").to_pylist()
        order = sorted(range(len(ids)), key=lambda k: layout.id_key("sample", ids[k]))[:cap]
        return users.take(sorted(order)), f"{why}, a stable sample of {cap} (generation.max_users)"
    return users, why


def _selected_users(cfg: Config, run_date: str, digests: pa.Table) -> tuple[pa.Table, str]:
    g = cfg.generation
    if g.users_uri:
        return _read_id_list(g.users_uri, ["user_id"]), f"users listed in {g.users_uri}"
    if g.incremental:
        before = _previous_digests(cfg.lake_uri, run_date)
        if before is None:
            return digests.select(["user_id"]), "incremental, but no earlier published run: all users"
        joined = digests.join(before, "user_id", join_type="left outer", right_suffix="_before")
        changed = pc.invert(pc.fill_null(pc.equal(joined.column("theta_digest"), joined.column("theta_digest_before")),
                                         False))
        return joined.filter(changed).select(["user_id"]), "incremental: users whose vector changed"
    return digests.select(["user_id"]), "all users"


def _cross_categories(batch: pa.Table, categories: list[str]) -> pa.Table:
    users = np.repeat(np.asarray(batch.column("user_id").to_pylist(), dtype=object), len(categories))
    cats = np.tile(np.asarray(categories, dtype=object), batch.num_rows)
    ids = [layout.make_pair_id(u, c) for u, c in zip(users, cats)]
    return pa.table([pa.array(ids, pa.string()), pa.array(users, pa.string()), pa.array(cats, pa.string())],
                    schema=PAIRS_SCHEMA)


def _listed_pairs(batch: pa.Table) -> pa.Table:
    users, cats = batch.column("user_id").to_pylist(), batch.column("category").to_pylist()
    ids = [layout.make_pair_id(u, c) for u, c in zip(users, cats)]
    return pa.table([pa.array(ids, pa.string()), pa.array(users, pa.string()), pa.array(cats, pa.string())],
                    schema=PAIRS_SCHEMA)


def write_pairs(cfg: Config, run_date: str, users: pa.Table, categories: list[str]) -> str:
    """Write the run's pair manifest with Ray Data, once (a `_DONE` marker makes it reusable); returns its URI."""
    import ray.data

    pairs_uri = work_uri(cfg.lake_uri, run_date, "pairs")
    done = storage.join(pairs_uri, "_DONE")
    if storage.exists(done):
        return pairs_uri
    storage.delete(pairs_uri)  # half-written by a crash
    if cfg.generation.pairs_uri:
        listed = _read_id_list(cfg.generation.pairs_uri, ["user_id", "category"])
        source = storage.join(work_uri(cfg.lake_uri, run_date), "listed_pairs.parquet")
        storage.write_table(listed, source)
        fn, kwargs = _listed_pairs, {}
    else:
        source = storage.join(work_uri(cfg.lake_uri, run_date), "users.parquet")
        storage.write_table(users, source)
        fn, kwargs = _cross_categories, {"categories": categories}
    src_fs, src_path = storage.filesystem(source)
    out_fs, out_path = storage.filesystem(pairs_uri)
    ray.data.read_parquet(src_path, filesystem=src_fs) \
        .map_batches(fn, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=4096) \
        .write_parquet(out_path, filesystem=out_fs, max_rows_per_file=cfg.generation.pairs_per_block)
    storage.write_bytes(done, b"")
    return pairs_uri


# ------------------------------------------------------------------------------------------ the actor
class DesignActor:
    """Loads the recommender, generator, catalogue index and (simulated catalogues) the oracle once, then designs
    each batch of pairs with the preference engine. Rows leave with raw uint8 images; PNGs are made downstream."""

    def __init__(self, recommender_uri: str, generator_uri: str, catalogue_uri: str, generation: dict,
                 run_date: str, model_version: str, failures_uri: str):
        import torch

        from fashiongen.data.contract import load_catalogue
        from fashiongen.data.oracle import load_truth
        from fashiongen.generation.engine import PreferenceEngine, category_mapping
        from fashiongen.models.contract import load_generator, load_recommender

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.settings: GenerationConfig = from_dict(GenerationConfig, generation)
        recommender, generator = load_recommender(recommender_uri), load_generator(generator_uri)
        catalogue = load_catalogue(catalogue_uri, with_images=False)
        oracle = load_truth(catalogue_uri, catalogue) if catalogue.simulated else None
        gen_category = category_mapping(catalogue.categories, generator.categories)[catalogue.item_category]
        self.engine = PreferenceEngine(recommender, generator, self.settings, gen_category, device=device,
                                       oracle=oracle)
        self.user_ids = catalogue.user_ids
        self.item_ids = catalogue.item_ids
        self.categories = {name: k for k, name in enumerate(generator.categories)}
        self.run_date, self.model_version, self.failures_uri = run_date, model_version, failures_uri
        self.fail_after = self.settings.fail_after_pairs
        self.designed = 0

    def _user_index(self, user_ids: list[str]) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.user_ids, user_ids), 0, max(len(self.user_ids) - 1, 0))
        known = self.user_ids[pos] == np.asarray(user_ids, dtype=str) if len(self.user_ids) else np.zeros(0, bool)
        return np.where(known, pos, -1)

    def _record_failures(self, rows: list[tuple[str, str, str, str]]) -> None:
        if rows:
            table = pa.table([pa.array(c, pa.string()) for c in zip(*rows)], schema=FAILURES_SCHEMA)
            storage.write_table(table, storage.join(self.failures_uri, f"{uuid.uuid4().hex}.parquet"))

    def _optimise(self, pair_ids: list[str], users: np.ndarray, cats: np.ndarray, failures: list):
        """Engine results for the batch; a batch the engine rejects is retried pair by pair to isolate the bad ones."""
        from fashiongen.generation.engine import EngineError

        try:
            return [self.engine.optimise(pair_ids, users, cats, self.run_date)], [np.arange(len(pair_ids))]
        except EngineError:
            results, rows = [], []
            for k in range(len(pair_ids)):
                try:
                    results.append(self.engine.optimise(pair_ids[k:k + 1], users[k:k + 1], cats[k:k + 1], self.run_date))
                    rows.append(np.array([k]))
                except EngineError as exc:
                    failures.append((k, str(exc)))
            return results, rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        pair_ids = batch.column("pair_id").to_pylist()
        user_ids = batch.column("user_id").to_pylist()
        categories = batch.column("category").to_pylist()
        users = self._user_index(user_ids)
        cats = np.array([self.categories.get(c, -1) for c in categories], dtype=np.int64)
        failures: list[tuple[int, str]] = []
        for k in np.flatnonzero(users < 0):
            failures.append((int(k), "unknown user_id (not in the catalogue the recommender was trained on)"))
        for k in np.flatnonzero((cats < 0) & (users >= 0)):
            failures.append((int(k), f"unknown category {categories[k]!r} (the generator knows {sorted(self.categories)})"))
        valid = np.flatnonzero((users >= 0) & (cats >= 0))
        tables = []
        if len(valid):
            sub_failures: list[tuple[int, str]] = []
            results, positions = self._optimise([pair_ids[k] for k in valid], users[valid], cats[valid], sub_failures)
            failures.extend((int(valid[k]), reason) for k, reason in sub_failures)
            for result, pos in zip(results, positions):
                tables.append(self._rows(result, [user_ids[k] for k in valid[pos]], [categories[k] for k in valid[pos]]))
        self._record_failures([(pair_ids[k], user_ids[k], categories[k], reason) for k, reason in failures])
        self.designed += len(valid)
        if self.fail_after and self.designed >= self.fail_after:
            raise RuntimeError(f"injected failure after {self.designed} pairs (generation.fail_after_pairs)")
        return pa.concat_tables(tables) if tables else _empty_raw_table()

    def _rows(self, result, user_ids: list[str], categories: list[str]) -> pa.Table:
        d, p = result.designs, result.pairs
        k = self.engine.top_k
        n_pairs = len(p["pair_id"])
        top_idx = p["dataset_top_item_idx"]
        top_ids = [[str(self.item_ids[i]) for i in row if i >= 0] for row in top_idx]
        top_scores = [[float(s) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(p["dataset_top_scores"], top_idx)]
        lift = np.repeat(p["lift"], k)
        images = d["image"]
        columns: dict[str, Any] = {
            "run_date": [self.run_date] * len(lift),
            "model_version": [self.model_version] * len(lift),
            "pair_id": [str(x) for x in d["pair_id"]],
            "user_id": np.repeat(np.asarray(user_ids, dtype=object), k).tolist(),
            "category": np.repeat(np.asarray(categories, dtype=object), k).tolist(),
            "rank": (d["rank"] + 1).astype(np.int32),
            "score": d["score"], "realism": d["realism"],
            "latent": pa.array(list(d["latent"]), pa.list_(pa.float32())),
            "image_raw": [img.tobytes() for img in images],
            "image_shape": [list(img.shape) for img in images],
            "dataset_top_item_ids": [row for row in top_ids for _ in range(k)],
            "dataset_top_scores": pa.array([row for row in top_scores for _ in range(k)], pa.list_(pa.float32())),
            "lift": lift.astype(np.float32),
        }
        if "oracle_score" in d:
            truth = p["oracle_dataset_top"]
            columns["oracle_score"] = d["oracle_score"].astype(np.float32)
            columns["dataset_oracle_scores"] = pa.array(
                [[float(t) for t, i in zip(trow, irow) if i >= 0] for trow, irow in zip(truth, top_idx) for _ in range(k)],
                pa.list_(pa.float32()))
        else:
            columns["oracle_score"] = pa.nulls(len(lift), pa.float32())
            columns["dataset_oracle_scores"] = pa.nulls(len(lift), pa.list_(pa.float32()))
        assert n_pairs * k == len(lift)
        return pa.table({name: columns[name] for name in _raw_schema().names}, schema=_raw_schema())


def _raw_schema() -> pa.Schema:
    fields = [f for f in layout.DESIGNS_SCHEMA if f.name not in ("image_png", "image_uri")]
    return pa.schema(fields + [pa.field("image_raw", pa.binary()), pa.field("image_shape", pa.list_(pa.int32()))])


def _empty_raw_table() -> pa.Table:
    return _raw_schema().empty_table()


def encode_designs(batch: pa.Table, lake_uri: str, write_objects: bool) -> pa.Table:
    """Raw uint8 images -> PNG bytes (and, when asked, PNG objects under `<lake>/images/` with hashed keys)."""
    from fashiongen.data.images import encode_png

    shapes = batch.column("image_shape").to_pylist()
    raws = batch.column("image_raw").to_pylist()
    pngs = [encode_png(np.frombuffer(raw, np.uint8).reshape(shape)) for raw, shape in zip(raws, shapes)]
    uris: list[str | None] = [None] * len(pngs)
    if write_objects:
        run_dates, users = batch.column("run_date").to_pylist(), batch.column("user_id").to_pylist()
        cats, ranks = batch.column("category").to_pylist(), batch.column("rank").to_pylist()
        for k, png in enumerate(pngs):
            uris[k] = layout.image_uri(lake_uri, run_dates[k], users[k], cats[k], ranks[k])
            storage.write_bytes(uris[k], png)
    batch = batch.drop_columns(list(RAW_COLUMNS))
    batch = batch.append_column("image_png", pa.array(pngs, pa.binary()))
    batch = batch.append_column("image_uri", pa.array(uris, pa.string()))
    return batch.select(layout.DESIGNS_SCHEMA.names).cast(layout.DESIGNS_SCHEMA)


# ------------------------------------------------------------------------------------------ the driver
def _pool_size(cfg: Config) -> tuple[int, float]:
    """(actors, GPUs per actor): one actor per GPU when the cluster has GPUs, else `generation.actors` CPU actors."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus and cfg.generation.use_gpu:
        return (cfg.generation.actors or gpus), 1.0
    return max(1, cfg.generation.actors), 0.0


def _distribution(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    return {"mean": float(values.mean()), "p10": float(np.percentile(values, 10)),
            "median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
            "share>0": float((values > 0).mean())}


def _failures(cfg: Config, run_date: str, done_pairs: set[str]) -> dict[str, str]:
    """pair_id -> reason for pairs that failed and were not designed since (a later retry may have succeeded)."""
    uri = work_uri(cfg.lake_uri, run_date, "failures")
    if not storage.list_dir(uri):
        return {}
    table = storage.read_table(uri)
    return {p: r for p, r in zip(table.column("pair_id").to_pylist(), table.column("reason").to_pylist())
            if p not in done_pairs}


def _reason_class(reason: str) -> str:
    """A failure reason without the pair it names, so the summary can count pairs per kind of failure."""
    if reason.startswith("pair ") and ": " in reason:
        reason = reason.split(": ", 1)[1]
    return reason.split(" (")[0]


SUMMARY_COLUMNS = ["pair_id", "rank", "lift", "oracle_score", "dataset_oracle_scores"]


def _summarise(summary: RunSummary, cfg: Config, run_date: str) -> RunSummary:
    run = reader.read_run(cfg.lake_uri, run_date, columns=SUMMARY_COLUMNS)  # not the images: driver memory stays flat
    best = run.filter(pc.equal(run.column("rank"), 1))
    done = set(run.column("pair_id").to_pylist())
    failed = _failures(cfg, run_date, done)
    summary.pairs_done, summary.pairs_failed = len(done), len(failed)
    reasons: dict[str, int] = {}
    for reason in failed.values():
        short = _reason_class(reason)
        reasons[short] = reasons.get(short, 0) + 1
    summary.failure_reasons = reasons
    summary.lift = _distribution(best.column("lift").to_numpy().astype(float))
    oracle = best.column("oracle_score")
    if oracle.null_count < len(oracle):
        # Oracle lift: true preference of the user's best design minus that of the best retrieved real item.
        best_design = run.group_by("pair_id").aggregate([("oracle_score", "max")])
        design_truth = dict(zip(best_design.column("pair_id").to_pylist(),
                                best_design.column("oracle_score_max").to_pylist()))
        lifts = [design_truth[p] - max(real) for p, real in zip(best.column("pair_id").to_pylist(),
                                                               best.column("dataset_oracle_scores").to_pylist()) if real]
        summary.oracle_lift = _distribution(np.asarray(lifts, dtype=float))
    summary.manifest = reader.read_manifest(cfg.lake_uri, run_date)
    return summary


def run_generation(cfg: Config, force: bool = False) -> RunSummary:
    """Plan, design, write and publish one run date (`cfg.run_date`, default today UTC); see the module docstring."""
    import ray
    import ray.data
    from ray.data.checkpoint import CheckpointConfig

    from fashiongen.data.contract import load_catalogue
    from fashiongen.models.contract import load_generator, load_recommender

    run_date = layout.validate_run_date(cfg.run_date or layout.today_utc())
    plan = publish.prepare_run(cfg.lake_uri, run_date, force=force)
    summary = RunSummary(run_date=run_date, action=plan.action, run_uri=plan.run_uri)
    if plan.action == "skip":
        log.info("designs for %s are already published at %s: nothing to do (force=true recomputes)",
                 run_date, plan.run_uri)
        return _summarise(summary, cfg, run_date)
    if plan.action == "start":
        storage.delete(work_uri(cfg.lake_uri, run_date))
    rec_uri, gen_uri = design_model_uris(cfg)
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
            .map_batches(DesignActor, batch_format="pyarrow", batch_size=cfg.generation.batch_pairs,
                         compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=gpus,
                         fn_constructor_kwargs={
                             "recommender_uri": rec_uri, "generator_uri": gen_uri,
                             "catalogue_uri": cfg.data.catalogue_uri, "generation": to_dict(cfg.generation),
                             "run_date": run_date, "model_version": model_version,
                             "failures_uri": work_uri(cfg.lake_uri, run_date, "failures")}) \
            .map_batches(encode_designs, batch_format="pyarrow", num_cpus=1,
                         fn_kwargs={"lake_uri": cfg.lake_uri, "write_objects": cfg.generation.write_image_objects}) \
            .write_parquet(out_path, filesystem=out_fs, min_rows_per_file=cfg.generation.rows_per_file)
    finally:
        ctx.checkpoint_config = None
    summary.seconds = time.perf_counter() - started
    summary.pairs_total = pairs_total
    summary.pairs_this_attempt = publish.dedupe_check(cfg.lake_uri, run_date).pairs - before
    publish.publish_run(cfg.lake_uri, run_date, model_version=model_version, config=cfg)
    designed = users if not cfg.generation.pairs_uri else \
        _read_id_list(cfg.generation.pairs_uri, ["user_id"]).group_by("user_id").aggregate([])
    storage.write_table(designed_digests(_previous_digests(cfg.lake_uri, run_date), digests, designed),
                        work_uri(cfg.lake_uri, run_date, "user_digests.parquet"))
    return _summarise(summary, cfg, run_date)


def pq_rows(uri: str) -> int:
    """Rows in a folder of Parquet files, from their footers."""
    import pyarrow.dataset as ds

    fs, path = storage.filesystem(uri)
    return ds.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True).count_rows()
