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

import numpy as np
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
    # What a win is made of (simulated catalogues only; null in runs written before they existed), in the oracle's
    # attribute space (fashiongen.data.oracle):
    pa.field("oracle_extrapolation", pa.float32(), nullable=True),    # largest excess past the category's real 1-99%
    pa.field("oracle_novelty", pa.float32(), nullable=True),          # to the nearest real item / real-to-real spacing
    pa.field("oracle_category_best", pa.float32(), nullable=True),    # true taste of the category's truly best item
    pa.field("oracle_diversity", pa.float32(), nullable=True),        # mean pairwise distance of the pair's designs
    pa.field("dataset_oracle_diversity", pa.float32(), nullable=True),  # the same of its retrieved real items
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


_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", np.uint8)
_HEX_VALUE = np.full(256, 255, np.uint8)
_HEX_VALUE[_HEX_DIGITS] = np.arange(16, dtype=np.uint8)


def pair_id_bytes(pair_id: pa.Array, where: str) -> np.ndarray:
    """(n, 16) uint8: the 16 bytes each of make_pair_id's 32-hex ids stands for, decoded without Python strings (a
    million ids hold 16 MB). LakeError naming `where` for anything else."""
    pair_id = pair_id.combine_chunks() if isinstance(pair_id, pa.ChunkedArray) else pair_id
    pair_id = pair_id.cast(pa.string())
    if not len(pair_id):
        return np.empty((0, 16), np.uint8)
    offsets = np.frombuffer(pair_id.buffers()[1], np.int32)[pair_id.offset:pair_id.offset + len(pair_id) + 1]
    nibbles = _HEX_VALUE[np.frombuffer(pair_id.buffers()[2], np.uint8)[offsets[0]:offsets[-1]]] \
        if not pair_id.null_count and np.all(np.diff(offsets) == 32) else np.full((1, 32), 255, np.uint8)
    if np.any(nibbles == 255):
        raise LakeError(f"{where} holds pair_ids that are not 32-hex make_pair_id ids; rerun it with force=true")
    nibbles = nibbles.reshape(-1, 32)
    return (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]


def pair_ids_of_bytes(keys: np.ndarray) -> pa.Array:
    """The inverse of pair_id_bytes: (n, 16) uint8 -> the 32-hex pair_id strings."""
    hex_chars = np.empty((len(keys), 32), np.uint8)
    hex_chars[:, 0::2], hex_chars[:, 1::2] = _HEX_DIGITS[keys >> 4], _HEX_DIGITS[keys & 15]
    offsets = np.arange(0, 32 * len(keys) + 1, 32, dtype=np.int32)
    return pa.StringArray.from_buffers(len(keys), pa.py_buffer(offsets), pa.py_buffer(hex_chars.tobytes()))


def design_key(user_id: str, category: str, rank: int) -> str:
    """SHA-256 hex digest naming one design; the only thing derived from ids that ever reaches a path."""
    if isinstance(rank, bool) or int(rank) != rank or rank < 1:
        raise LakeError(f"design rank {rank!r} for user {user_id!r}/{category!r} must be an integer >= 1")
    return _digest("design", user_id, category, int(rank))


def id_key(kind: str, record_id: str) -> str:
    """The path-safe stand-in for an id ("user", "item"...) in a file name: 32 hex chars of a SHA-256 digest."""
    return _digest(kind, record_id)[:32]
