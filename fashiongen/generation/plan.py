"""What a designs run designs: the users (all, listed, incremental, sampled), their pairs with stable ids, and the
per-user θ digests that incremental runs compare against. The pair list is written by Ray Data once per run date
under `LakePaths.work(run_date)` and only ever read back by the pipeline.
"""
from __future__ import annotations

import hashlib
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.errors import FashiongenError
from fashiongen.lake import layout, reader
from fashiongen.lake.paths import LakePaths
from fashiongen.lake.table import Lake
from fashiongen.runtime import ensure_ray

log = logging.getLogger(__name__)
PAIRS_SCHEMA = pa.schema([("pair_id", pa.string()), ("user_id", pa.string()), ("category", pa.string())])
DIGESTS_ATTACHMENT = "user_digests"  # its name among a published run's attachments


class GenerationError(FashiongenError, RuntimeError):
    """A generation run that cannot start or cannot publish; the message says why and what to do."""


def user_digests(theta: np.ndarray, user_ids: np.ndarray) -> pa.Table:
    """(user_id, theta_digest): a digest of each user's vector, to find users whose taste changed."""
    rounded = np.ascontiguousarray(np.round(np.asarray(theta, np.float32), 5))
    digests = [hashlib.blake2b(row.tobytes(), digest_size=8).hexdigest() for row in rounded]
    return pa.table({"user_id": pa.array(user_ids.astype(str)), "theta_digest": pa.array(digests)})


def read_id_list(uri: str, columns: list[str]) -> tuple[pa.Table, int]:
    """(the distinct rows of a Parquet or CSV file's `columns`, as strings; how many duplicate rows were dropped).
    A listed id twice would be designed twice and make the date unpublishable; a null id is an error."""
    if uri.endswith(".csv"):
        import pyarrow.csv as pacsv

        table = pacsv.read_csv(pa.BufferReader(storage.read_bytes(uri)))
    else:
        table = storage.read_table(uri)
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise GenerationError(f"{uri!r} has no column(s) {missing}: it must list {columns}")
    for c in columns:
        nulls = table.column(c).null_count
        if nulls:
            raise GenerationError(f"{uri!r} has {nulls} row(s) with an empty {c}: every row must name one")
    ids = pa.table({c: pc.cast(table.column(c), pa.string()) for c in columns})
    distinct = ids.group_by(columns, use_threads=False).aggregate([])
    dropped = ids.num_rows - distinct.num_rows
    if dropped:
        log.warning("%s lists %d duplicate row(s): each is designed once", uri, dropped)
    return distinct.select(columns), dropped


def previous_digests(lake: Lake | str, run_date: str) -> pa.Table | None:
    """The user digests committed with the latest published run before `run_date`, checked against the checksum
    its snapshot holds (None when no earlier run was published). A run published before digests were part of the
    commit (no attachment) is passed over with a warning, so its users are compared with an older run."""
    for date in reversed(reader.list_complete_runs(lake)):
        if date >= run_date:
            continue
        table = reader.read_attachment(lake, date, DIGESTS_ATTACHMENT)
        if table is not None:
            return table
        log.warning("designs run %s has no committed user digests (published by an older fashiongen); "
                    "incremental mode compares with the run before it", date)
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
        users, dropped = read_id_list(g.users_uri, ["user_id"])
        return users, f"users listed in {g.users_uri}" + (f" ({dropped} duplicate rows dropped)" if dropped else "")
    if g.incremental:
        before = previous_digests(Lake.of(cfg), run_date)
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


def write_pairs(cfg: Config, run_date: str, users: pa.Table, categories: list[str],
                listed: pa.Table | None = None, ray_address: str | None = None) -> str:
    """Write the run's pair manifest with Ray Data (started or joined at `ray_address` here), once: a `_DONE`
    marker makes it reusable; returns its URI. The pairs are `listed` (user_id, category) when given, else every
    user crossed with every category."""
    import ray.data

    work = LakePaths(cfg.lake_uri).work(run_date)
    pairs_uri = storage.join(work, "pairs")
    done = storage.join(pairs_uri, "_DONE")
    if storage.exists(done):
        return pairs_uri
    storage.delete(pairs_uri)  # half-written by a crash
    if listed is not None:
        source = storage.join(work, "listed_pairs.parquet")
        storage.write_table(listed, source)
        fn, kwargs = _listed_pairs, {}
    else:
        source = storage.join(work, "users.parquet")
        storage.write_table(users, source)
        fn, kwargs = _cross_categories, {"categories": categories}
    src_fs, src_path = storage.filesystem(source)
    out_fs, out_path = storage.filesystem(pairs_uri)
    ensure_ray(ray_address)
    ray.data.read_parquet(src_path, filesystem=src_fs) \
        .map_batches(fn, fn_kwargs=kwargs, batch_format="pyarrow", batch_size=4096) \
        .write_parquet(out_path, filesystem=out_fs, max_rows_per_file=cfg.generation.pairs_per_block)
    storage.write_bytes(done, b"")
    return pairs_uri


def pq_rows(uri: str) -> int:
    """Rows in a folder of Parquet files, from their footers."""
    import pyarrow.dataset as ds

    fs, path = storage.filesystem(uri)
    return ds.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True).count_rows()
