"""The catalogue contract: what every importer writes and every model reads.

Under a catalogue URI:

    items.parquet         item_id: string, category: string, image_png: binary, width: int32, height: int32
    interactions.parquet  user_id: string, item_id: string, ts: timestamp[ms, UTC]   (as imported, validated)
    split.parquet         user_id, item_id, ts, split: string in {train, validation, test}
    item_stats.parquet    item_id, train_count: int32, is_cold: bool
    quarantine.parquet    table, record_id, reason   (every rejected record, never dropped silently)
    catalogue.json        source, simulated, categories, image mode/size, counts, split seed, cold threshold

Every image has the same mode and size (recorded in catalogue.json). The split is leave-one-out per
user, as the paper: one validation and one test interaction, the rest train, drawn by a keyed hash of
(seed, user_id, item_id) so it does not depend on row order. Importers with a fixed split (the paper's
.npy) pass it in and it is kept. Cold items have fewer than `cold_threshold` training interactions.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fashiongen import storage
from fashiongen.errors import FashiongenError
from fashiongen.data.images import MODES, ImageError, decode_image

ITEMS_SCHEMA = pa.schema([
    ("item_id", pa.string()), ("category", pa.string()), ("image_png", pa.binary()),
    ("width", pa.int32()), ("height", pa.int32()),
])
INTERACTIONS_SCHEMA = pa.schema([
    ("user_id", pa.string()), ("item_id", pa.string()), ("ts", pa.timestamp("ms", tz="UTC")),
])
SPLIT_SCHEMA = INTERACTIONS_SCHEMA.append(pa.field("split", pa.string()))
ITEM_STATS_SCHEMA = pa.schema([("item_id", pa.string()), ("train_count", pa.int32()), ("is_cold", pa.bool_())])
QUARANTINE_SCHEMA = pa.schema([("table", pa.string()), ("record_id", pa.string()), ("reason", pa.string())])
SPLITS = ("train", "validation", "test")
MIN_USER_INTERACTIONS = 3  # one train, one validation, one test
CONTRACT_VERSION = 1


class CatalogueError(FashiongenError, ValueError):
    """Input that violates the catalogue contract; the message names the record and the fix."""


@dataclass
class Quarantine:
    """Records rejected during import, each with a reason; written to quarantine.parquet and counted."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, table: str, record_id: str, reason: str) -> None:
        self.rows.append((table, record_id, reason))

    def add_many(self, table: str, record_ids, reason: str) -> None:
        self.rows.extend((table, str(r), reason) for r in record_ids)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for table, _, reason in self.rows:
            key = f"{table}: {reason.split(' (')[0]}"
            out[key] = out.get(key, 0) + 1
        return out

    def to_table(self) -> pa.Table:
        cols = list(zip(*self.rows)) if self.rows else ([], [], [])
        return pa.table([pa.array(c, pa.string()) for c in cols], schema=QUARANTINE_SCHEMA)


def require_columns(table: pa.Table, schema: pa.Schema, name: str) -> pa.Table:
    """`table` with exactly `schema`'s columns and types, or a CatalogueError naming `name`, the column and (for
    a value that does not convert) its first bad row."""
    expected = ", ".join(f"{f.name}: {f.type}" for f in schema)
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise CatalogueError(f"{name} is missing column(s) {missing}; expected {expected}")
    columns = []
    for f in schema:
        column = table.column(f.name)
        try:
            columns.append(column.cast(f.type))
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise CatalogueError(f"{name} column {f.name!r} is {column.type}, expected {f.type}; expected "
                                 f"{expected}") from None
        except pa.ArrowInvalid as exc:
            row = _first_bad_row(column, f.type)
            raise CatalogueError(f"{name} column {f.name!r} row {row} ({column[row].as_py()!r}) is not a {f.type} "
                                 f"({exc}); expected {expected}") from None
    return pa.Table.from_arrays(columns, schema=schema)


def _first_bad_row(column: pa.ChunkedArray, to: pa.DataType) -> int:
    """The first row of `column` whose value does not cast to `to` (bisection: a few casts, no Python loop)."""
    lo, hi = 0, len(column)  # [lo, hi) holds a bad value
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            column.slice(lo, mid - lo).cast(to)
            lo = mid
        except pa.ArrowInvalid:
            hi = mid
    return lo


def validate_items(items: pa.Table, quarantine: Quarantine, categories: list[str] | None = None,
                   expect_mode: str | None = None, expect_size: tuple[int, int] | None = None) -> tuple[pa.Table, dict]:
    """Check ids, categories and image bytes. Undecodable images and images whose mode or size differ
    from the catalogue's are quarantined. Returns (clean items, image info {mode, width, height})."""
    items = require_columns(items, ITEMS_SCHEMA, "items")
    ids = items.column("item_id").to_pylist()
    if any(i is None or i == "" for i in ids):
        raise CatalogueError("items has an empty item_id: every item needs a unique, non-empty id")
    seen: set[str] = set()
    dupes = [i for i in ids if i in seen or seen.add(i)]
    if dupes:
        raise CatalogueError(f"items has duplicate item_id {dupes[0]!r} ({len(dupes)} duplicates): ids must be unique")
    cats = items.column("category").to_pylist()
    keep = np.ones(len(ids), dtype=bool)
    mode, size = expect_mode, expect_size
    for row, data in enumerate(items.column("image_png").to_pylist()):
        if data is None:
            quarantine.add("items", ids[row], "missing image bytes")
            keep[row] = False
            continue
        try:
            arr = decode_image(data)
        except ImageError as exc:
            quarantine.add("items", ids[row], f"corrupt image ({exc}; re-export the image as PNG or JPEG)")
            keep[row] = False
            continue
        got_mode = MODES.get(arr.shape[2], f"{arr.shape[2]}-channel")
        got_size = (arr.shape[1], arr.shape[0])
        mode, size = mode or got_mode, size or got_size
        if got_mode != mode or got_size != size:
            quarantine.add("items", ids[row], f"image is {got_mode} {got_size[0]}x{got_size[1]}, catalogue is "
                           f"{mode} {size[0]}x{size[1]} (set data.image_size to resize on import)")
            keep[row] = False
    clean = items.filter(pa.array(keep))
    present = set(clean.column("category").to_pylist())
    if categories is not None:
        unknown = sorted(set(cats) - set(categories))
        if unknown:
            raise CatalogueError(f"items use categories {unknown} that are not in the category list {categories}")
        empty = [c for c in categories if c not in present]
        if empty:
            raise CatalogueError(f"category {empty[0]!r} has no (valid) items: remove it from the category list "
                                 "or import items for it")
    if clean.num_rows == 0:
        raise CatalogueError("no valid items left after validation; see the quarantine reasons")
    return clean, {"mode": mode, "width": size[0], "height": size[1]}


def validate_interactions(interactions: pa.Table, item_ids: set[str], quarantine: Quarantine) -> pd.DataFrame:
    """Quarantine interactions without a ts or with a ts after the import time, naming unknown items, duplicates
    of a (user, item) pair (the earliest is kept) and users with fewer than 3 interactions (leave-one-out needs
    train + validation + test)."""
    inter = require_columns(interactions, INTERACTIONS_SCHEMA, "interactions").to_pandas()
    if inter["user_id"].isna().any() or (inter["user_id"] == "").any():
        raise CatalogueError("interactions has an empty user_id: every interaction needs a user")
    now = pd.Timestamp.now(tz="UTC")
    missing, future = inter["ts"].isna(), inter["ts"] > now
    for u, i in inter.loc[missing, ["user_id", "item_id"]].itertuples(index=False):
        quarantine.add("interactions", f"{u}|{i}", "missing ts (every interaction needs a time)")
    for u, i in inter.loc[future, ["user_id", "item_id"]].itertuples(index=False):
        quarantine.add("interactions", f"{u}|{i}", f"ts in the future (after the import time "
                       f"{now:%Y-%m-%dT%H:%M:%SZ}; check the source's clock and the unit of its timestamps)")
    inter = inter[~(missing | future)]
    unknown = ~inter["item_id"].isin(item_ids)
    for u, i in inter.loc[unknown, ["user_id", "item_id"]].itertuples(index=False):
        quarantine.add("interactions", f"{u}|{i}", "unknown item_id (not in items, or quarantined there)")
    inter = inter[~unknown]
    inter = inter.sort_values(["user_id", "item_id", "ts"], kind="stable")
    dup = inter.duplicated(["user_id", "item_id"], keep="first")
    for u, i in inter.loc[dup, ["user_id", "item_id"]].itertuples(index=False):
        quarantine.add("interactions", f"{u}|{i}", "duplicate interaction (earliest kept)")
    inter = inter[~dup]
    counts = inter.groupby("user_id")["item_id"].transform("size")
    few = counts < MIN_USER_INTERACTIONS
    for u, n in inter.loc[few].groupby("user_id").size().items():
        quarantine.add("users", u, f"user has {n} interaction(s); leave-one-out needs at least {MIN_USER_INTERACTIONS}")
    inter = inter[~few]
    if inter.empty:
        raise CatalogueError("no valid interactions left after validation; see the quarantine reasons")
    return inter.reset_index(drop=True)


def leave_one_out(inter: pd.DataFrame, seed: int) -> pd.Series:
    """Per user: one validation and one test interaction, the rest train; deterministic under `seed`
    and independent of row order (a keyed hash of user and item orders each user's interactions)."""
    key = (inter["user_id"].astype(str) + "\x00" + inter["item_id"].astype(str)).to_numpy()
    h = pd.util.hash_array(key, hash_key=f"{seed:016d}"[-16:])
    rank = pd.Series(h, index=inter.index).groupby(inter["user_id"].to_numpy()).rank(method="first")
    return pd.Series(np.where(rank == 1, "test", np.where(rank == 2, "validation", "train")), index=inter.index)


def _apply_fixed_split(inter: pd.DataFrame, fixed_split: pa.Table, quarantine: Quarantine) -> pd.DataFrame:
    """Attach a given split; users left without exactly one validation and one test interaction (their
    held-out item was quarantined) are quarantined, as leave-one-out could not evaluate them."""
    given = fixed_split.select(["user_id", "item_id", "split"]).to_pandas()
    given = given.drop_duplicates(["user_id", "item_id"], keep="first")
    inter = inter.merge(given, on=["user_id", "item_id"], how="left")
    if inter["split"].isna().any():
        row = inter[inter["split"].isna()].iloc[0]
        raise CatalogueError(f"interaction {row.user_id}|{row.item_id} has no split in the fixed split")
    bad_names = sorted(set(inter["split"]) - set(SPLITS))
    if bad_names:
        raise CatalogueError(f"fixed split uses {bad_names}: the only split names are {list(SPLITS)}")
    held = inter[inter["split"] != "train"].groupby(["user_id", "split"]).size().unstack(fill_value=0)
    held = held.reindex(columns=["validation", "test"], fill_value=0).reindex(inter["user_id"].unique(), fill_value=0)
    bad = held[(held["validation"] != 1) | (held["test"] != 1) | ~held.index.isin(inter.loc[inter["split"] == "train", "user_id"])]
    for user, row in bad.iterrows():
        quarantine.add("users", user, f"fixed split leaves {row['validation']} validation and {row['test']} test "
                       "interaction(s) and needs 1 + 1 + at least 1 train")
    inter = inter[~inter["user_id"].isin(bad.index)]
    if inter.empty:
        raise CatalogueError("no user keeps one train, one validation and one test interaction in the fixed split")
    return inter.reset_index(drop=True)


@dataclass
class ImportedCatalogue:
    """What an importer hands to `write_catalogue` (items, interactions, and optionally a fixed split)."""

    items: pa.Table
    interactions: pa.Table
    meta: dict
    categories: list[str] | None = None
    fixed_split: pa.Table | None = None
    quarantine: Quarantine = field(default_factory=Quarantine)

    def write(self, uri: str, *, split_seed: int = 0, cold_threshold: int = 5) -> dict:
        return write_catalogue(uri, self.items, self.interactions, self.meta, split_seed=split_seed,
                               cold_threshold=cold_threshold, categories=self.categories,
                               fixed_split=self.fixed_split, quarantine=self.quarantine)


def write_catalogue(uri: str, items: pa.Table, interactions: pa.Table, meta: dict, *, split_seed: int = 0,
                    cold_threshold: int = 5, categories: list[str] | None = None, fixed_split: pa.Table | None = None,
                    quarantine: Quarantine | None = None) -> dict:
    """Validate, split and write a catalogue. `fixed_split` (user_id, item_id, split) keeps a given split.
    Returns the catalogue.json metadata (with counts and quarantine summary)."""
    quarantine = quarantine or Quarantine()
    items, image = validate_items(items, quarantine, categories)
    inter = validate_interactions(interactions, set(items.column("item_id").to_pylist()), quarantine)
    if fixed_split is not None:
        inter = _apply_fixed_split(inter, fixed_split, quarantine)
    else:
        inter["split"] = leave_one_out(inter, split_seed)
    train = inter[inter["split"] == "train"]
    train_counts = train.groupby("item_id").size()
    item_ids = items.column("item_id").to_pandas()
    counts = item_ids.map(train_counts).fillna(0).astype("int32")
    stats = pa.table({"item_id": item_ids.to_numpy(), "train_count": counts.to_numpy(),
                      "is_cold": (counts < cold_threshold).to_numpy()}, schema=ITEM_STATS_SCHEMA)
    cats = categories or sorted(set(items.column("category").to_pylist()))
    meta = {
        **meta,
        "contract_version": CONTRACT_VERSION,
        "categories": cats,
        "image": image,
        "split_seed": None if fixed_split is not None else split_seed,
        "split": "fixed by source" if fixed_split is not None else "leave-one-out (keyed hash)",
        "cold_threshold": cold_threshold,
        "counts": {
            "items": items.num_rows, "users": int(inter["user_id"].nunique()), "interactions": len(inter),
            "train": int((inter["split"] == "train").sum()), "cold_items": int(stats.column("is_cold").to_numpy().sum()),
            "quarantined": len(quarantine.rows),
        },
        "quarantine": quarantine.counts(),
    }
    split_table = pa.Table.from_pandas(inter[SPLIT_SCHEMA.names], schema=SPLIT_SCHEMA, preserve_index=False)
    storage.write_table(items, storage.join(uri, "items.parquet"), row_group_size=8192)
    storage.write_table(split_table.drop_columns(["split"]), storage.join(uri, "interactions.parquet"))
    storage.write_table(split_table, storage.join(uri, "split.parquet"))
    storage.write_table(stats, storage.join(uri, "item_stats.parquet"))
    storage.write_table(quarantine.to_table(), storage.join(uri, "quarantine.parquet"))
    storage.write_bytes(storage.join(uri, "catalogue.json"), json.dumps(meta, indent=2).encode())  # last: marks complete
    return meta


@dataclass
class Catalogue:
    """A catalogue in memory, indexed by dense integers (users and items sorted by id)."""

    meta: dict
    item_ids: np.ndarray  # (N,) str
    item_category: np.ndarray  # (N,) int64 index into categories
    categories: list[str]
    images: np.ndarray  # (N, H, W, C) uint8; empty (0, H, W, C) when loaded with_images=False
    user_ids: np.ndarray  # (U,) str
    train_users: np.ndarray  # (T,) int64
    train_items: np.ndarray  # (T,) int64
    validation_item: np.ndarray  # (U,) int64, one per user
    test_item: np.ndarray  # (U,) int64, one per user
    item_train_count: np.ndarray  # (N,) int32
    is_cold: np.ndarray  # (N,) bool

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def simulated(self) -> bool:
        return bool(self.meta.get("simulated"))

    def user_index(self, user_ids) -> np.ndarray:
        """Dense indices of user ids; raises CatalogueError naming the first unknown id."""
        idx = np.searchsorted(self.user_ids, user_ids)
        idx = np.clip(idx, 0, len(self.user_ids) - 1)
        bad = self.user_ids[idx] != np.asarray(user_ids)
        if bad.any():
            raise CatalogueError(f"unknown user_id {np.asarray(user_ids)[bad][0]!r}: not in this catalogue")
        return idx

    def train_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, items) of each user's training items, users in index order."""
        order = np.argsort(self.train_users, kind="stable")
        indptr = np.zeros(self.num_users + 1, dtype=np.int64)
        np.add.at(indptr, self.train_users + 1, 1)
        return np.cumsum(indptr), self.train_items[order]


def read_meta(uri: str) -> dict:
    meta_uri = storage.join(uri, "catalogue.json")
    if not storage.exists(meta_uri):
        raise CatalogueError(f"no catalogue at {uri!r} (catalogue.json missing): run `fashiongen prepare` first")
    return json.loads(storage.read_bytes(meta_uri))


def load_catalogue(uri: str, with_images: bool = True) -> Catalogue:
    """Read a catalogue written by `write_catalogue` into dense arrays."""
    meta = read_meta(uri)
    cols = ["item_id", "category", "image_png"] if with_images else ["item_id", "category"]
    items = storage.read_table(storage.join(uri, "items.parquet"), columns=cols)
    order = np.argsort(np.asarray(items.column("item_id").to_pylist(), dtype=object).astype(str), kind="stable")
    item_ids = np.asarray(items.column("item_id").to_pylist(), dtype=str)[order]
    categories = list(meta["categories"])
    cat_index = {c: k for k, c in enumerate(categories)}
    item_category = np.array([cat_index[c] for c in items.column("category").to_pylist()], dtype=np.int64)[order]
    img = meta["image"]
    if with_images:
        pngs = items.column("image_png").to_pylist()
        images = np.stack([decode_image(pngs[k]) for k in order])
    else:
        images = np.zeros((0, img["height"], img["width"], 3 if img["mode"] == "RGB" else 1), np.uint8)  # not loaded
    # Indexed in Arrow, never as Python strings: a million shoppers' interactions stay a few int arrays.
    split = storage.read_table(storage.join(uri, "split.parquet"), columns=["user_id", "item_id", "split"])
    users, items_of = (split.column(c).cast(pa.string()) for c in ("user_id", "item_id"))
    user_ids = np.sort(np.asarray(pc.unique(users).to_pylist(), dtype=str))
    u = pc.index_in(users, value_set=pa.array(user_ids))
    i = pc.index_in(items_of, value_set=pa.array(item_ids))
    if i.null_count:
        raise CatalogueError(f"{storage.join(uri, 'split.parquet')} names {i.null_count} interactions with items "
                             "missing from items.parquet: rebuild the catalogue with fashiongen prepare")
    u, i = u.to_numpy(zero_copy_only=False), i.to_numpy(zero_copy_only=False)
    kind = split.column("split")
    train, validation, test = (pc.equal(kind, name).to_numpy(zero_copy_only=False)
                               for name in ("train", "validation", "test"))
    del split, users, items_of, kind
    validation_item = np.full(len(user_ids), -1, np.int64)
    test_item = np.full(len(user_ids), -1, np.int64)
    validation_item[u[validation]] = i[validation]
    test_item[u[test]] = i[test]
    stats = storage.read_table(storage.join(uri, "item_stats.parquet")).to_pandas().set_index("item_id")
    stats = stats.reindex(item_ids)
    pa.default_memory_pool().release_unused()  # the interactions' Arrow buffers are freed: give them back
    return Catalogue(
        meta=meta, item_ids=item_ids, item_category=item_category, categories=categories, images=images,
        user_ids=user_ids, train_users=u[train].astype(np.int64), train_items=i[train].astype(np.int64),
        validation_item=validation_item, test_item=test_item,
        item_train_count=stats["train_count"].to_numpy(np.int32), is_cold=stats["is_cold"].to_numpy(bool),
    )
