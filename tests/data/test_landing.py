"""The landing zone under hostile input: bad folders, files and rows are quarantined with a reason and counted,
and never block the good rows of the same day or of any later night."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from fashiongen import storage
from fashiongen.data.contract import INTERACTIONS_SCHEMA, Catalogue, Quarantine, load_catalogue
from fashiongen.data.landing import Accepted, accept_landed, read_landed
from fashiongen.lake.paths import LakePaths
from fixtures import planted_catalogue

DAY, NEXT = "2026-11-26", "2026-11-27"


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory) -> Catalogue:
    uri = str(tmp_path_factory.mktemp("landing") / "catalogue")
    planted_catalogue(uri, num_items=60, num_users=6)
    return load_catalogue(uri, with_images=False)


@pytest.fixture
def landing(storage_root) -> str:
    return f"{storage_root}/landing"


def _ms(date: str, offset_ms: int = 0) -> int:
    return int(dt.datetime.fromisoformat(date).replace(tzinfo=dt.timezone.utc).timestamp() * 1000) + offset_ms


def _fresh(catalogue: Catalogue, user: int, k: int) -> list[str]:
    """k item ids the user has no interaction with in the catalogue."""
    seen = {*catalogue.train_items[catalogue.train_users == user], catalogue.validation_item[user],
            catalogue.test_item[user]}
    return [catalogue.item_ids[i] for i in range(catalogue.num_items) if i not in seen][:k]


def _land(landing: str, date: str, name: str, users: list, items: list, ts: list) -> None:
    storage.write_table(pa.table({"user_id": pa.array(users, pa.string()), "item_id": pa.array(items, pa.string()),
                                  "ts": pa.array(ts, pa.timestamp("ms", tz="UTC"))}, schema=INTERACTIONS_SCHEMA),
                        f"{landing}/date={date}/{name}")


def _night(landing: str, catalogue: Catalogue, run_date: str) -> Accepted:
    quarantine = Quarantine()
    paths = LakePaths("unused-lake", landing_override=landing)
    return accept_landed(read_landed(paths, run_date, quarantine), catalogue, run_date, quarantine)


def _accepted_pairs(accepted: Accepted, catalogue: Catalogue) -> list[tuple[str, str]]:
    return list(zip(catalogue.user_ids[accepted.users], catalogue.item_ids[accepted.items]))


def test_null_ids_get_their_own_reason_and_the_other_rows_theirs(catalogue, tmp_path):
    landing = str(tmp_path / "landing")
    u0, u1 = catalogue.user_ids[:2]
    a, b, c = _fresh(catalogue, 0, 3)
    _land(landing, DAY, "a.parquet", [u0, u1, "newcomer"], [a, "no-such-item", b], [_ms(DAY, 1)] * 3)
    _land(landing, DAY, "null-user.parquet", [None], [c], [_ms(DAY, 2)])
    _land(landing, DAY, "null-item.parquet", [u1], [None], [_ms(DAY, 3)])
    d = _fresh(catalogue, 1, 1)[0]
    _land(landing, NEXT, "b.parquet", [u1], [d], [_ms(NEXT, 4)])  # a later night is not poisoned
    accepted = _night(landing, catalogue, NEXT)
    assert _accepted_pairs(accepted, catalogue) == [(u0, a), (u1, d)] and list(accepted.today_users) == [1]
    assert accepted.quarantine.counts() == {"landed: null user_id": 1, "landed: null item_id": 1,
                                            "landed: unknown item_id": 1, "landed: user not in the catalogue": 1}


def test_junk_files_are_quarantined_one_by_one_and_block_nothing(catalogue, landing):
    u0, u1 = catalogue.user_ids[:2]
    a, b, c, d = _fresh(catalogue, 0, 4)
    day = f"{landing}/date={DAY}"
    _land(landing, DAY, "good.parquet", [u0], [a], [_ms(DAY)])
    _land(landing, DAY, "nested/part-0.parquet", [u0], [b], [_ms(DAY, 1)])
    storage.write_bytes(f"{day}/README.txt", b"exported by upstream\n")
    storage.write_bytes(f"{day}/empty.parquet", b"")
    storage.write_table(pa.table({"user_id": [u0], "item_id": [c], "ts": [float("nan")]}), f"{day}/float-ts.parquet")
    storage.write_table(pa.table({"user_id": [u0], "item_id": [d]}), f"{day}/no-ts.parquet")
    storage.write_bytes(f"{day}/_SUCCESS", b"")  # a hidden marker (Spark's), not data
    e = _fresh(catalogue, 1, 1)[0]
    _land(landing, NEXT, "good.parquet", [u1], [e], [_ms(NEXT)])

    accepted = _night(landing, catalogue, NEXT)
    assert _accepted_pairs(accepted, catalogue) == [(u0, a), (u0, b), (u1, e)]
    reasons = {record: reason for table, record, reason in accepted.quarantine.rows if table == "landed files"}
    assert set(reasons) == {f"date={DAY}/{name}" for name in ("README.txt", "empty.parquet", "float-ts.parquet",
                                                             "no-ts.parquet")}
    assert reasons[f"date={DAY}/README.txt"].startswith("not a readable Parquet file")
    assert reasons[f"date={DAY}/empty.parquet"].startswith("empty file")
    float_ts = f"date={DAY}/float-ts.parquet"
    assert f"{float_ts} column 'ts' is double, expected timestamp" in reasons[float_ts]
    assert "missing column(s) ['ts']" in reasons[f"date={DAY}/no-ts.parquet"]
    assert accepted.quarantine.counts() == {"landed files: not a readable Parquet file": 1,
                                            "landed files: empty file": 1, "landed files: wrong schema": 2}


def test_timestamps_off_the_folders_day_and_duplicates_are_quarantined(catalogue, tmp_path):
    landing = str(tmp_path / "landing")
    u0, u1 = catalogue.user_ids[:2]
    fresh0, (g,) = _fresh(catalogue, 0, 6), _fresh(catalogue, 1, 1)
    off_day = [None, -1000, _ms("2100-01-01"), _ms("2262-06-01"), _ms(NEXT), _ms(DAY, 86_399_999)]  # last: in the day
    _land(landing, DAY, "a.parquet", [u0] * 6, fresh0, off_day)
    trained = catalogue.item_ids[catalogue.train_items[catalogue.train_users == 0][0]]
    _land(landing, DAY, "b.parquet", [u0, u1], [trained, g], [_ms(DAY, 5), _ms(DAY, 9)])
    _land(landing, DAY, "c.parquet", [u1], [g], [_ms(DAY, 2)])  # the same interaction, earlier: this one is kept
    _land(landing, NEXT, "d.parquet", [u1], [g], [_ms(NEXT, 1)])  # and again the next day

    accepted = _night(landing, catalogue, NEXT)
    assert _accepted_pairs(accepted, catalogue) == [(u0, fresh0[5]), (u1, g)]
    assert list(accepted.today_users) == []  # u1's interaction on NEXT is a duplicate: nothing new to learn
    assert accepted.quarantine.counts() == {"landed: null ts": 1, "landed: ts outside the landing folder's day": 4,
                                            "landed: duplicate of a training interaction": 1,
                                            "landed: duplicate of an earlier landed interaction": 2}
    kept = [r for _, r, _ in accepted.quarantine.rows if r.startswith(f"{DAY}|{u1}|{g}|")]
    assert len(kept) == 1 and kept[0].endswith("00:00:00.009000+00:00")  # the later copy of the same day
    assert accepted.quarantine.rows[0][1] == f"{DAY}|{u0}|{fresh0[0]}|"  # date|user_id|item_id|ts, a null left empty


def test_bad_folder_names_and_bad_ts_strings_are_named_and_block_no_night(catalogue, tmp_path):
    landing = str(tmp_path / "landing")
    u0, u1 = catalogue.user_ids[:2]
    a, b, c = _fresh(catalogue, 0, 3)
    _land(landing, DAY, "good.parquet", [u0], [a], [_ms(DAY)])
    storage.write_table(pa.table({"user_id": [u0, u0], "item_id": [b, c], "ts": ["2026-11-26T10:00:00Z", "yesterday"]}),
                        f"{landing}/date={DAY}/strings.parquet")
    _land(landing, "2030-01-01", "x.parquet", [u0], [c], [_ms("2030-01-01")])  # after both nights: not read
    good = storage.read_bytes(f"{landing}/date={DAY}/good.parquet")
    storage.write_bytes(f"{landing}/date=2030-02-31/x.parquet", good)
    storage.write_bytes(f"{landing}/notes.txt", b"stray")
    d = _fresh(catalogue, 1, 1)[0]
    _land(landing, NEXT, "good.parquet", [u1], [d], [_ms(NEXT)])

    for night, pairs in ((DAY, [(u0, a)]), (NEXT, [(u0, a), (u1, d)])):
        accepted = _night(landing, catalogue, night)
        assert _accepted_pairs(accepted, catalogue) == pairs
        reasons = {record: reason for _, record, reason in accepted.quarantine.rows}
        assert set(reasons) == {"date=2030-02-31", f"date={DAY}/strings.parquet", "notes.txt"}
        assert reasons["date=2030-02-31"].startswith("landing folder name is not a calendar date")
        assert f"date={DAY}/strings.parquet column 'ts' row 1 ('yesterday')" in reasons[f"date={DAY}/strings.parquet"]
        assert reasons["notes.txt"].startswith("not a landing folder")
        assert np.array_equal(accepted.today_users, [0] if night == DAY else [1])
