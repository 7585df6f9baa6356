"""`fashiongen prepare`: sources, idempotency, --force, --allow-pickle, and the S3 round trip."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from fashiongen import storage
from fashiongen.cli import main
from fashiongen.data.contract import load_catalogue, read_meta
from fashiongen.data.oracle import load_truth
from fixtures import blob_images, needs_fmnist


def _image_folder(root: Path, per_category: int = 30) -> Path:
    for c, name in enumerate(("bags", "boots", "shirts")):
        (root / name).mkdir(parents=True)
        for k, img in enumerate(blob_images(per_category, seed=c)):
            Image.fromarray(img[:, :, 0]).save(root / name / f"{k:03d}.png")
    return root


def _sim_args(tmp_path: Path, uri: str, *extra: str) -> list[str]:
    return ["prepare", "data.source=folder", f"data.images_dir={_image_folder(tmp_path / 'shop')}",
            f"data.catalogue_uri={uri}", "simulation.num_users=60", *extra]


def test_prepare_simulates_over_a_folder_and_is_idempotent(tmp_path, capsys):
    uri = str(tmp_path / "cat")
    args = _sim_args(tmp_path, uri)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"wrote catalogue {uri}" in out and "simulated shoppers" in out and "oracle AUC ceiling" in out
    meta = read_meta(uri)
    assert meta["simulated"] is True and meta["simulator"]["num_users"] == 60
    assert 0.5 < meta["oracle"]["auc_ceiling_test"] < 1.0
    written = (Path(uri) / "catalogue.json").stat().st_mtime_ns
    assert main(args) == 0
    assert "reused existing catalogue" in capsys.readouterr().out
    assert (Path(uri) / "catalogue.json").stat().st_mtime_ns == written
    assert main(args[:-1] + ["simulation.num_users=70"]) == 2
    assert "differs in ['simulation']" in capsys.readouterr().err and read_meta(uri)["simulator"]["num_users"] == 60
    assert main(args[:-1] + ["simulation.num_users=70", "--force"]) == 0
    assert load_catalogue(uri, with_images=False).num_users == 70


def test_prepare_refuses_pickle_without_flag(tmp_path, capsys):
    path = tmp_path / "AmazonFashion6ImgPartitioned.npy"
    np.save(path, np.empty(6, dtype=object), allow_pickle=True)
    args = ["prepare", "data.source=amazon_npy", f"data.npy_path={path}", f"data.catalogue_uri={tmp_path / 'c'}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "arbitrary code" in err and "--allow-pickle" in err
    assert not (tmp_path / "c" / "catalogue.json").exists()


def test_prepare_missing_fashion_mnist_dir(tmp_path, capsys):
    assert main(["prepare", f"data.fashion_mnist_dir={tmp_path / 'none'}", f"data.catalogue_uri={tmp_path / 'c'}"]) == 2
    assert "apt-get install dataset-fashion-mnist" in capsys.readouterr().err


@needs_fmnist
def test_prepare_fashion_mnist_to_s3_read_by_pyarrow_duckdb_polars(s3_server, capsys):
    import duckdb
    import polars as pl
    import pyarrow.parquet as pq

    uri = "s3://lake/catalogues/fmnist-small"
    assert main(["prepare", f"data.catalogue_uri={uri}", "data.max_items=500", "simulation.num_users=100"]) == 0
    assert "wrote catalogue s3://lake/catalogues/fmnist-small" in capsys.readouterr().out
    catalogue = load_catalogue(uri)
    assert catalogue.images.shape == (500, 28, 28, 1) and catalogue.num_users == 100
    truth = load_truth(uri, catalogue)
    assert truth.item_utility([0], [0, 1]).shape == (1, 2)

    fs, path = storage.filesystem(storage.join(uri, "split.parquet"))
    split = pq.read_table(path, filesystem=fs)
    assert split.num_rows == catalogue.meta["counts"]["interactions"]

    con = duckdb.connect()
    con.register_filesystem(storage.fsspec_filesystem(uri))
    per_split = dict(con.sql(f"SELECT split, count(*) FROM read_parquet('{uri}/split.parquet') GROUP BY split").fetchall())
    assert per_split["test"] == per_split["validation"] == 100
    n_items, n_cats = con.sql(f"SELECT count(*), count(DISTINCT category) FROM read_parquet('{uri}/items.parquet')").fetchall()[0]
    assert (n_items, n_cats) == (500, 10)

    options = {"aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
               "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
               "aws_region": os.environ["AWS_REGION"], "aws_endpoint_url": os.environ["AWS_ENDPOINT_URL"],
               "aws_allow_http": "true"}
    taste = pl.read_parquet(f"{uri}/truth/taste.parquet", storage_options=options)
    assert taste.height == 100 and taste.columns == ["user_id", "category_affinity", "ideal_level", "weight",
                                                  "log_normaliser"]
    stats = pl.read_parquet(f"{uri}/item_stats.parquet", storage_options=options)
    assert stats["is_cold"].sum() == catalogue.meta["counts"]["cold_items"]
