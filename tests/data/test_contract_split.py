"""The catalogue contract's validator and leave-one-out split."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fashiongen.data.contract import (CatalogueError, Quarantine, leave_one_out, load_catalogue, validate_interactions,
                                      validate_items, write_catalogue)
from fashiongen.data.images import encode_png
from fixtures import blob_items, interactions_table, random_interactions


def test_validate_items_quarantines_corrupt_wrong_mode_and_size():
    table = blob_items(6)
    pngs = table.column("image_png").to_pylist()
    pngs[1] = b"garbage"
    pngs[2] = encode_png(np.zeros((16, 16, 3), np.uint8))  # RGB among L
    pngs[3] = encode_png(np.zeros((8, 16), np.uint8))  # wrong size
    pngs[4] = None
    table = table.set_column(2, "image_png", pa.array(pngs, pa.binary()))
    q = Quarantine()
    clean, image = validate_items(table, q)
    assert clean.column("item_id").to_pylist() == ["i00", "i05"]
    assert image == {"mode": "L", "width": 16, "height": 16}
    reasons = {r: why for _, r, why in q.rows}
    assert reasons["i01"].startswith("corrupt image") and "RGB 16x16, catalogue is L 16x16" in reasons["i02"]
    assert "L 16x8" in reasons["i03"] and "data.image_size" in reasons["i03"] and reasons["i04"] == "missing image bytes"


def test_validate_items_rejects_bad_ids_and_categories():
    table = blob_items(4)
    dup = table.set_column(0, "item_id", pa.array(["a", "b", "a", "c"]))
    with pytest.raises(CatalogueError, match="duplicate item_id 'a'"):
        validate_items(dup, Quarantine())
    with pytest.raises(CatalogueError, match="not in the category list"):
        validate_items(table, Quarantine(), categories=["c0"])
    with pytest.raises(CatalogueError, match="category 'c9' has no"):
        validate_items(table, Quarantine(), categories=["c0", "c1", "c9"])
    with pytest.raises(CatalogueError, match="missing column"):
        validate_items(table.drop_columns(["category"]), Quarantine())


def test_validate_interactions_quarantines_unknown_duplicate_and_short_users():
    rows = [("a", "i00", 5), ("a", "i01", 2), ("a", "i01", 1), ("a", "i02", 3), ("a", "zz", 4), ("b", "i00", 1)]
    q = Quarantine()
    clean = validate_interactions(interactions_table(rows), {"i00", "i01", "i02"}, q)
    assert sorted(clean["item_id"]) == ["i00", "i01", "i02"]
    assert clean.loc[clean["item_id"] == "i01", "ts"].iloc[0].second == 1  # earliest duplicate kept
    assert q.counts() == {"interactions: unknown item_id": 1, "interactions: duplicate interaction": 1,
                          "users: user has 1 interaction(s); leave-one-out needs at least 3": 1}


def test_split_one_validation_one_test_per_user_and_deterministic():
    inter = random_interactions()
    split = leave_one_out(inter, seed=3)
    counts = pd.crosstab(inter["user_id"], split)
    assert (counts["test"] == 1).all() and (counts["validation"] == 1).all() and (counts["train"] == 4).all()
    assert split.equals(leave_one_out(inter, seed=3))
    assert not split.equals(leave_one_out(inter, seed=4))
    shuffled = inter.sample(frac=1.0, random_state=1)
    assert leave_one_out(shuffled, seed=3).sort_index().equals(split)  # independent of row order


def test_written_catalogue_split_and_coldblob_items(tmp_path):
    inter = random_interactions(num_users=10, per_user=4)
    table = pa.Table.from_pandas(inter.assign(ts=pd.to_datetime(inter["ts"], unit="s", utc=True)), preserve_index=False)
    a = write_catalogue(str(tmp_path / "a"), blob_items(), table, {"source": "t"}, split_seed=5, cold_threshold=3)
    b = write_catalogue(str(tmp_path / "b"), blob_items(), table.take(np.arange(table.num_rows)[::-1]), {"source": "t"},
                        split_seed=5, cold_threshold=3)
    sa = pd.read_parquet(tmp_path / "a" / "split.parquet").sort_values(["user_id", "item_id"]).reset_index(drop=True)
    sb = pd.read_parquet(tmp_path / "b" / "split.parquet").sort_values(["user_id", "item_id"]).reset_index(drop=True)
    assert sa.equals(sb)
    catalogue = load_catalogue(str(tmp_path / "a"))
    assert (catalogue.validation_item >= 0).all() and (catalogue.test_item >= 0).all()
    assert np.array_equal(catalogue.is_cold, catalogue.item_train_count < 3)
    expected = np.bincount(catalogue.train_items, minlength=catalogue.num_items)
    assert np.array_equal(catalogue.item_train_count, expected)
    assert a["counts"]["cold_items"] == int(catalogue.is_cold.sum())
    assert a["split_seed"] == 5 and a["cold_threshold"] == 3 and b["counts"] == a["counts"]


def test_fixed_split_is_kept_and_checked(tmp_path):
    rows = [("a", "i00", 1), ("a", "i01", 2), ("a", "i02", 3), ("a", "i03", 4)]
    fixed = pa.table({"user_id": ["a"] * 4, "item_id": ["i00", "i01", "i02", "i03"],
                      "split": ["train", "train", "validation", "test"]})
    write_catalogue(str(tmp_path / "c"), blob_items(), interactions_table(rows), {"source": "t"}, fixed_split=fixed)
    catalogue = load_catalogue(str(tmp_path / "c"))
    assert catalogue.item_ids[catalogue.test_item[0]] == "i03"
    bad = fixed.set_column(2, "split", pa.array(["train", "train", "valid", "test"]))
    with pytest.raises(CatalogueError, match="'valid'"):
        write_catalogue(str(tmp_path / "d"), blob_items(), interactions_table(rows), {"source": "t"}, fixed_split=bad)


def test_validate_interactions_quarantines_missing_and_future_timestamps():
    ms = [1, 2, 3, None, 4_102_444_800_000, 100_000_000_000_000]  # ..., 2100-01-01, year 5138
    table = pa.table({"user_id": ["a"] * 6, "item_id": [f"i{k:02d}" for k in range(6)],
                      "ts": pa.array(ms, pa.timestamp("ms", tz="UTC"))})
    q = Quarantine()
    clean = validate_interactions(table, {f"i{k:02d}" for k in range(6)}, q)
    assert sorted(clean["item_id"]) == ["i00", "i01", "i02"]
    assert q.counts() == {"interactions: missing ts": 1, "interactions: ts in the future": 2}
    assert "after the import time" in {r: why for _, r, why in q.rows}["a|i05"]


def test_wrongly_typed_column_names_the_column_and_row():
    table = pa.table({"user_id": ["a", "a"], "item_id": ["i00", "i01"], "ts": ["2024-01-01T00:00:00Z", "yesterday"]})
    with pytest.raises(CatalogueError, match=r"interactions column 'ts' row 1 \('yesterday'\) is not a timestamp"):
        validate_interactions(table, {"i00", "i01"}, Quarantine())
    floats = table.set_column(2, "ts", pa.array([1.0, float("nan")]))
    with pytest.raises(CatalogueError, match=r"interactions column 'ts' is double, expected timestamp\[ms, tz=UTC\]"):
        validate_interactions(floats, {"i00", "i01"}, Quarantine())
