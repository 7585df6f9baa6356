"""The shape of what the personalised-catalogue job writes: the designs schema, run dates and id digests.
Where it writes is `fashiongen.lake.paths.LakePaths`.

Partitioning: only by `run_date`. Not by `category`: the main read is "every design of one user" (all categories),
categories are few and dictionary-encoded so Parquet statistics prune them anyway, and Ray's `partition_cols` writes
one file per block *and* category while ignoring `min_rows_per_file` (ray-project/ray#59485). Never by user.

`run_date` is also stored inside the files (equal to the directory's value) so a file copied out of the lake still
says which run it belongs to. Readers that infer Hive partitions should declare it a string (DuckDB would
otherwise cast it to DATE; `pq.read_table` on the designs folder would fail to merge string and dictionary).

Ids are never path components: image keys are SHA-256 digests of the (user_id, category, rank) triple, so
ids such as "../../etc" or "a/b" cannot escape the run prefix or create folders.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pyarrow as pa

from fashiongen.errors import FashiongenError


class LakeError(FashiongenError, ValueError):
    """A run date, id or lake state that the designs layer cannot accept; the message says what to fix."""


DESIGNS_SCHEMA = pa.schema([
    pa.field("run_date", pa.string(), nullable=False),            # YYYY-MM-DD, equals the Hive partition value
    pa.field("model_version", pa.string(), nullable=False),       # which recommender + generator produced the row
    pa.field("pair_id", pa.string(), nullable=False),             # make_pair_id(user_id, category): Ray Data checkpoint key
    pa.field("user_id", pa.string(), nullable=False),
    pa.field("category", pa.string(), nullable=False),
    pa.field("rank", pa.int32(), nullable=False),                 # 1-based position among the pair's kept designs
    pa.field("score", pa.float32(), nullable=False),              # recommender preference of the design for the user
    pa.field("realism", pa.float32(), nullable=False),            # discriminator realism term
    pa.field("latent", pa.list_(pa.float32()), nullable=False),   # optimised z
    pa.field("image_png", pa.binary(), nullable=False),
    pa.field("image_uri", pa.string(), nullable=True),            # set when the PNG is also an object (image_uri())
    pa.field("dataset_top_item_ids", pa.list_(pa.string()), nullable=False),  # best catalogue items in that category
    pa.field("dataset_top_scores", pa.list_(pa.float32()), nullable=False),
    pa.field("lift", pa.float32(), nullable=False),               # score - best dataset score
    pa.field("oracle_score", pa.float32(), nullable=True),        # ground-truth preference (simulated catalogues only)
    pa.field("dataset_oracle_scores", pa.list_(pa.float32()), nullable=True),
    pa.field("judge_score", pa.float32(), nullable=True),         # held-out scorer (generation.judge_uri), never climbed
    pa.field("dataset_judge_scores", pa.list_(pa.float32()), nullable=True),  # its scores of dataset_top_item_ids
    pa.field("mode", pa.string(), nullable=True),                 # design.mode (null in runs written before it existed)
    pa.field("source_item_id", pa.string(), nullable=True),       # the real item this design started from, if any
])

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def validate_run_date(run_date: str) -> str:
    """Return `run_date` if it is a real calendar date written YYYY-MM-DD, else raise LakeError."""
    if not isinstance(run_date, str) or not _DATE_RE.match(run_date):
        raise LakeError(f"run_date {run_date!r} is not of the form YYYY-MM-DD (e.g. run_date=2026-08-20)")
    try:
        dt.date.fromisoformat(run_date)
    except ValueError:
        raise LakeError(f"run_date {run_date!r} is not a calendar date (e.g. run_date=2026-08-20)") from None
    return run_date


def today_utc() -> str:
    """Today's date in UTC as YYYY-MM-DD (the default run date)."""
    return dt.datetime.now(dt.timezone.utc).date().isoformat()


def _digest(*parts: str | int) -> str:
    # JSON of the list is an unambiguous encoding: ("a|b", "c") and ("a", "b|c") differ.
    payload = json.dumps([p if isinstance(p, int) else str(p) for p in parts], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def make_pair_id(user_id: str, category: str) -> str:
    """Stable id of a (user, category) pair: 32 hex chars, safe anywhere (checkpoint key, latent seed)."""
    return _digest("pair", user_id, category)[:32]


def design_key(user_id: str, category: str, rank: int) -> str:
    """SHA-256 hex digest naming one design; the only thing derived from ids that ever reaches a path."""
    if isinstance(rank, bool) or int(rank) != rank or rank < 1:
        raise LakeError(f"design rank {rank!r} for user {user_id!r}/{category!r} must be an integer >= 1")
    return _digest("design", user_id, category, int(rank))


def id_key(kind: str, record_id: str) -> str:
    """The path-safe stand-in for an id ("user", "item"...) in a file name: 32 hex chars of a SHA-256 digest."""
    return _digest(kind, record_id)[:32]
