"""The landing zone of new interactions, which the nightly run folds into user vectors.

    <landing>/date=YYYY-MM-DD/*.parquet     user_id: string, item_id: string, ts: timestamp (the contract's schema)

`<landing>` is `LakePaths.landing()`: nightly.interactions_uri, default `<lake>/landing/interactions`. Upstream systems drop each day's
interactions under that day's folder; `fashiongen simulate-day` does so for simulated catalogues.
Nothing is silently dropped: `read_landed` reads file by file and quarantines (with a reason, counted) folders
whose name is not a calendar date and files that are not Parquet or not in the schema, so one bad file never
blocks a day or a later night; hidden `_`/`.` names (e.g. Spark's `_SUCCESS`) are not data. `accept_landed`
quarantines rows with a null id or ts, a ts outside their folder's UTC day, unknown users or items, a user's
held-out (validation/test) item, and duplicates of a training interaction or of an earlier landed one.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fashiongen import storage
from fashiongen.data.contract import INTERACTIONS_SCHEMA, Catalogue, CatalogueError, Quarantine, require_columns
from fashiongen.lake.layout import LakeError, validate_run_date
from fashiongen.lake.paths import LakePaths

DAY_MS = 86_400_000
FILES = "landed files"  # the quarantine table of whole folders and files
log = logging.getLogger(__name__)


def _quarantine_file(quarantine: Quarantine, landing: str, name: str, reason: str) -> None:
    log.warning("quarantined %s: %s", storage.join(landing, name), reason)
    quarantine.add(FILES, name, reason)


def landed_dates(paths: LakePaths, until: str, quarantine: Quarantine) -> list[str]:
    """Dates with a landing folder, up to and including `until`, in order; anything else directly under the
    landing zone (a folder name that is not a calendar date, a stray file) is quarantined."""
    landing = paths.landing()
    dates = []
    for name in storage.list_dir(landing):
        if name.startswith(("_", ".")):
            continue
        if not name.startswith("date="):
            _quarantine_file(quarantine, landing, name, "not a landing folder (only date=YYYY-MM-DD folders are "
                             "read; move it out of the landing zone)")
            continue
        try:
            date = validate_run_date(name.removeprefix("date="))
        except LakeError:
            _quarantine_file(quarantine, landing, name, f"landing folder name is not a calendar date ({name} is "
                             "skipped every night: rename it to date=YYYY-MM-DD of the day its interactions happened)")
            continue
        if date <= until:
            dates.append(date)
    return sorted(dates)


def _day_files(day: str) -> list[str]:
    """Paths relative to a landing folder of every file under it (recursively), sorted; hidden names skipped."""
    return [p for p in storage.list_files(day) if not any(part.startswith(("_", ".")) for part in p.split("/"))]


def _read_file(landing: str, name: str, quarantine: Quarantine) -> pa.Table | None:
    """One landed file in the contract schema, or None when it is quarantined (empty, not Parquet, bad schema).
    A file that cannot be fetched is a StorageError: the storage is at fault, not the data."""
    data = storage.read_bytes(storage.join(landing, name))
    if not data:
        _quarantine_file(quarantine, landing, name, "empty file (0 bytes: an interrupted upload? land it again)")
        return None
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as exc:
        _quarantine_file(quarantine, landing, name, f"not a readable Parquet file ({exc}; land interactions as "
                         "Parquet with user_id, item_id, ts)")
        return None
    try:
        return require_columns(table, INTERACTIONS_SCHEMA, f"landed file {name}")
    except CatalogueError as exc:
        _quarantine_file(quarantine, landing, name, f"wrong schema ({exc})")
        return None


def read_landed(paths: LakePaths, until: str, quarantine: Quarantine) -> pd.DataFrame:
    """Every landed interaction up to `until` (user_id, item_id, ts, date), read and schema-checked file by
    file; folders and files that cannot be read are added to `quarantine`."""
    landing = paths.landing()
    frames = []
    for date in landed_dates(paths, until, quarantine):
        for path in _day_files(paths.landing_day(date)):
            table = _read_file(landing, f"date={date}/{path}", quarantine)
            if table is not None:
                frames.append(table.to_pandas().assign(date=date))
    if not frames:
        return INTERACTIONS_SCHEMA.empty_table().to_pandas().assign(date=pd.Series([], dtype=str))
    return pd.concat(frames, ignore_index=True)


@dataclass
class Accepted:
    """Landed interactions usable for training, as dense indices of the catalogue."""

    users: np.ndarray  # (M,) int64
    items: np.ndarray  # (M,) int64
    today_users: np.ndarray  # users with an accepted interaction on the run date (sorted, unique)
    quarantine: Quarantine = field(default_factory=Quarantine)


def _index(known: np.ndarray, ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(dense index, found) of ids in a sorted id array; nulls are not found."""
    values = ids.fillna("").to_numpy(dtype=str)
    idx = np.clip(np.searchsorted(known, values), 0, len(known) - 1).astype(np.int64)
    return idx, (known[idx] == values) & ids.notna().to_numpy()


def accept_landed(landed: pd.DataFrame, catalogue: Catalogue, run_date: str,
                  quarantine: Quarantine | None = None) -> Accepted:
    """Map landed rows onto the catalogue; each row that cannot train is quarantined with a reason (first
    matching): null user_id / item_id / ts, ts outside its folder's UTC day, unknown user or item, held-out item,
    duplicate of a training interaction, duplicate of an earlier landed interaction (the earliest is kept).
    `quarantine` (e.g. the one `read_landed` filled) is extended and returned in the result."""
    quarantine = Quarantine() if quarantine is None else quarantine
    keep = np.ones(len(landed), dtype=bool)

    def reject(mask: np.ndarray, reason: str) -> None:
        hit = keep & mask
        for row in landed[hit].itertuples(index=False):
            fields = (row.date, row.user_id, row.item_id, row.ts)  # date|user_id|item_id|ts, nulls left empty
            quarantine.add("landed", "|".join("" if pd.isna(v) else str(v) for v in fields), reason)
        keep[hit] = False

    users, known_users = _index(catalogue.user_ids, landed["user_id"])
    items, known_items = _index(catalogue.item_ids, landed["item_id"])
    ts = landed["ts"]
    start = pd.to_datetime(landed["date"], format="%Y-%m-%d", utc=True)
    reject(landed["user_id"].isna().to_numpy(), "null user_id")
    reject(landed["item_id"].isna().to_numpy(), "null item_id")
    reject(ts.isna().to_numpy(), "null ts")
    reject(~((ts >= start) & (ts < start + pd.Timedelta(days=1))).to_numpy(), "ts outside the landing folder's day "
           "(land each interaction under date=YYYY-MM-DD of its own UTC day)")
    reject(~known_users, "user not in the catalogue (new users join after `fashiongen prepare` and "
           "`fashiongen train-recommender`)")
    reject(~known_items, "unknown item_id (not in the catalogue)")
    reject((items == catalogue.validation_item[users]) | (items == catalogue.test_item[users]),
           "the user's held-out evaluation item (kept out of training so evaluation stays honest)")
    pairs = users * catalogue.num_items + items
    reject(np.isin(pairs, catalogue.train_users * catalogue.num_items + catalogue.train_items),
           "duplicate of a training interaction (the catalogue already has this user and item)")
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(ts.to_numpy(dtype="datetime64[ms]")[rows], kind="stable")]
    later = np.zeros(len(landed), dtype=bool)
    later[rows[pd.Series(pairs[rows]).duplicated().to_numpy()]] = True
    reject(later, "duplicate of an earlier landed interaction (the earliest is kept)")
    today = landed["date"].to_numpy(dtype=str)[keep] == run_date
    return Accepted(users=users[keep], items=items[keep], today_users=np.unique(users[keep][today]),
                    quarantine=quarantine)


def simulate_day(catalogue: Catalogue, truth, run_date: str, num_users: int, picks: int, seed: int) -> pa.Table:
    """A day of interactions for `num_users` random simulated shoppers, `picks` new items each, drawn from the
    ground truth's choice model (Gumbel-top-k on the true utility) among items they have not interacted with."""
    if num_users < 1 or picks < 1:
        raise CatalogueError("simulate-day needs --users >= 1 and --picks >= 1")
    rng = np.random.default_rng([seed, int(dt.date.fromisoformat(validate_run_date(run_date)).toordinal())])
    users = np.sort(rng.choice(catalogue.num_users, size=min(num_users, catalogue.num_users), replace=False))
    utility = truth.item_utility(users)  # (len(users), N)
    known = np.zeros_like(utility, dtype=bool)
    row_of = np.full(catalogue.num_users, -1)
    row_of[users] = np.arange(len(users))
    mask = row_of[catalogue.train_users] >= 0
    known[row_of[catalogue.train_users[mask]], catalogue.train_items[mask]] = True
    known[np.arange(len(users)), catalogue.validation_item[users]] = True
    known[np.arange(len(users)), catalogue.test_item[users]] = True
    keys = np.where(known, -np.inf, utility + rng.gumbel(size=utility.shape))
    chosen = np.argsort(-keys, axis=1)[:, :picks]
    start = int(dt.datetime.fromisoformat(run_date).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)
    ts = start + np.sort(rng.integers(0, DAY_MS, chosen.shape), axis=1)
    return pa.table({"user_id": pa.array(np.repeat(catalogue.user_ids[users], picks)),
                     "item_id": pa.array(catalogue.item_ids[chosen.ravel()]),
                     "ts": pa.array(ts.ravel(), pa.timestamp("ms", tz="UTC"))}, schema=INTERACTIONS_SCHEMA)
