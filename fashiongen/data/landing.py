"""The landing zone of new interactions, which the nightly run folds into user vectors.

    <landing>/date=YYYY-MM-DD/*.parquet     user_id: string, item_id: string, ts: timestamp (the contract's schema)

`<landing>` is `LakePaths.landing()`: nightly.interactions_uri, default `<lake>/landing/interactions`. Upstream systems drop each day's
interactions under that day's folder; `fashiongen simulate-day` does so for simulated catalogues.
`accept_landed` checks them against the catalogue: rows naming unknown users or items, or a user's held-out
(validation/test) item, are quarantined with a reason and counted, never silently dropped.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from fashiongen import storage
from fashiongen.data.contract import INTERACTIONS_SCHEMA, Catalogue, CatalogueError, Quarantine, require_columns
from fashiongen.lake.layout import validate_run_date
from fashiongen.lake.paths import LakePaths

DAY_MS = 86_400_000


def landed_dates(paths: LakePaths, until: str) -> list[str]:
    """Dates with a landing folder, up to and including `until`, in order."""
    dates = [name.removeprefix("date=") for name in storage.list_dir(paths.landing()) if name.startswith("date=")]
    return sorted(d for d in dates if d <= until)


def read_landed(paths: LakePaths, until: str) -> pd.DataFrame:
    """Every landed interaction up to `until` (user_id, item_id, ts, date), schema-checked per day."""
    frames = []
    for date in landed_dates(paths, until):
        uri = paths.landing_day(date)
        table = require_columns(storage.read_table(uri), INTERACTIONS_SCHEMA, f"landed interactions {uri}")
        frames.append(table.to_pandas().assign(date=date))
    if not frames:
        return pd.DataFrame({"user_id": [], "item_id": [], "ts": [], "date": []})
    return pd.concat(frames, ignore_index=True)


@dataclass
class Accepted:
    """Landed interactions usable for training, as dense indices of the catalogue."""

    users: np.ndarray  # (M,) int64
    items: np.ndarray  # (M,) int64
    today_users: np.ndarray  # users with an accepted interaction on the run date (sorted, unique)
    quarantine: Quarantine = field(default_factory=Quarantine)


def accept_landed(landed: pd.DataFrame, catalogue: Catalogue, run_date: str) -> Accepted:
    """Map landed rows onto the catalogue; quarantine unknown users/items and held-out items (with reasons)."""
    quarantine = Quarantine()
    known_users = np.isin(landed["user_id"].to_numpy(str), catalogue.user_ids)
    known_items = np.isin(landed["item_id"].to_numpy(str), catalogue.item_ids)
    for row in landed[~known_users].itertuples(index=False):
        quarantine.add("landed", f"{row.date}|{row.user_id}|{row.item_id}", "user not in the catalogue (new users "
                       "join after `fashiongen prepare` and `fashiongen train-recommender`)")
    for row in landed[known_users & ~known_items].itertuples(index=False):
        quarantine.add("landed", f"{row.date}|{row.user_id}|{row.item_id}", "unknown item_id (not in the catalogue)")
    ok = landed[known_users & known_items]
    users = catalogue.user_index(ok["user_id"].to_numpy(str)).astype(np.int64)
    items = np.searchsorted(catalogue.item_ids, ok["item_id"].to_numpy(str)).astype(np.int64)
    held_out = (items == catalogue.validation_item[users]) | (items == catalogue.test_item[users])
    for row in ok[held_out].itertuples(index=False):
        quarantine.add("landed", f"{row.date}|{row.user_id}|{row.item_id}", "the user's held-out evaluation item "
                       "(kept out of training so evaluation stays honest)")
    keep = ~held_out
    today = ok["date"].to_numpy(str)[keep] == run_date
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
