"""Builders shared by the tests: catalogues (every test builds its catalogue here), fake designs, paths.

Plain functions; the pytest fixtures built on them (`shared_catalogue`, `s3_server`, `ray_local`) are in
conftest.py. Import them as `from fixtures import ...`: tests/ is on sys.path because tests/conftest.py lives there
(pytest's default "prepend" import mode; test module basenames are unique across the folders, no __init__.py files).
"""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fashiongen.data.contract import write_catalogue
from fashiongen.data.images import encode_png
from fashiongen.config import IcebergConfig
from fashiongen import storage
from fashiongen.lake import DESIGNS_SCHEMA, Lake, make_pair_id, publish_run, write_designs
from fashiongen.lake.paths import LakePaths

REPO = Path(__file__).resolve().parent.parent  # the repository root (configs/, README.md, bench/, cluster/)
FMNIST = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
needs_fmnist = pytest.mark.skipif(not (FMNIST / "t10k-images-idx3-ubyte.gz").exists(),
                                  reason="needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)")


# --- images ---------------------------------------------------------------------------------------------------

def blob_images(n: int, side: int = 16, seed: int = 0) -> np.ndarray:
    """uint8 (n, side, side, 1) images of bright rectangles of random size and place on black."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, side, side, 1), np.uint8)
    for k in range(n):
        h, w = rng.integers(3, side - 2, 2)
        top, left = rng.integers(0, side - h), rng.integers(0, side - w)
        images[k, top:top + h, left:left + w, 0] = rng.integers(80, 256)
    return images


# --- catalogue parts ------------------------------------------------------------------------------------------

def items_table(item_ids: list[str], categories: list[str], images) -> pa.Table:
    """The catalogue contract's items table for square uint8 (H, W, C) images (an array or a list of them)."""
    n, size = len(item_ids), len(images[0]) if len(images) else 0
    return pa.table({"item_id": list(item_ids), "category": list(categories),
                     "image_png": pa.array([encode_png(im) for im in images], pa.binary()),
                     "width": pa.array([size] * n, pa.int32()), "height": pa.array([size] * n, pa.int32())})


def blob_items(n: int = 12, categories: int = 2) -> pa.Table:
    """Items i00, i01, ... of `blob_images(n)` (16x16 grey), category c<k % categories>."""
    return items_table([f"i{k:02d}" for k in range(n)], [f"c{k % categories}" for k in range(n)], blob_images(n))


def interactions_table(rows) -> pa.Table:
    """(user_id, item_id, ts in epoch seconds) rows as an interactions table (UTC timestamps)."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    return pa.Table.from_pandas(frame, preserve_index=False)


def random_interactions(num_users: int = 40, per_user: int = 6, seed: int = 0) -> pd.DataFrame:
    """Users u00.. each picking `per_user` distinct items of `blob_items()`'s i00-i11 at random epoch seconds."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u:02d}", f"i{i:02d}", int(rng.integers(0, 10**6)))
            for u in range(num_users) for i in rng.choice(12, per_user, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])


def _ms_interactions(user_ids: list[str], item_ids: list[str]) -> pa.Table:
    """Interactions in the given order, timestamped 0, 1, 2, ... ms."""
    return pa.table({"user_id": user_ids, "item_id": item_ids,
                     "ts": pa.array(np.arange(len(user_ids), dtype="int64"), pa.timestamp("ms", tz="UTC"))})


# --- written catalogues (builder(uri, **settings): use them through conftest's `shared_catalogue`) -----------

PLANTED_SIZE = 8
PLANTED_CATEGORIES = ["a", "b"]


def planted_catalogue(uri: str, num_items: int = 120, num_users: int = 40, per_user: int = 8, seed: int = 0) -> None:
    """For the recommender tests: grey 8x8 images with a bright bar in the left or right half (a random category
    each). Half the users pick only left-bar items, half only right-bar items: the image alone predicts a user's
    items."""
    rng = np.random.default_rng(seed)
    side = np.arange(num_items) % 2  # 0 = left bar, 1 = right bar
    ids, cats, images = [], [], []
    for k in range(num_items):
        img = rng.integers(0, 40, (PLANTED_SIZE, PLANTED_SIZE, 1), dtype=np.uint8)
        col = int(rng.integers(0, 2)) + (0 if side[k] == 0 else PLANTED_SIZE // 2 + 1)
        img[1:PLANTED_SIZE - 1, col:col + 2] = 230
        ids.append(f"item-{k:04d}")
        cats.append(PLANTED_CATEGORIES[int(rng.integers(0, 2))])
        images.append(img)
    users, picked = [], []
    for u in range(num_users):
        pool = np.flatnonzero(side == u % 2)
        for i in rng.choice(pool, size=per_user, replace=False):
            users.append(f"user-{u:03d}")
            picked.append(ids[i])
    write_catalogue(uri, items_table(ids, cats, images), _ms_interactions(users, picked),
                    {"source": "test", "simulated": False}, categories=PLANTED_CATEGORIES)


BAR_SIZE = 16
BAR_CATEGORIES = ["left", "right"]


def bar_catalogue(uri: str, num_items: int = 40) -> None:
    """For the GAN and design tests: grey 16x16 images with a bright bar on the left half (category 'left', even
    items) or the right half ('right', odd items); users u0-u2 picked items 0-8, three each."""
    rng = np.random.default_rng(0)
    ids, cats, images = [], [], []
    for k in range(num_items):
        img = rng.integers(0, 40, (BAR_SIZE, BAR_SIZE, 1), dtype=np.uint8)
        col = int(rng.integers(1, 6)) + (0 if k % 2 == 0 else 8)
        img[2:14, col:col + 3] = 230
        ids.append(f"item-{k:04d}")
        cats.append(BAR_CATEGORIES[k % 2])
        images.append(img)
    users = [f"u{k}" for k in range(3) for _ in range(3)]
    write_catalogue(uri, items_table(ids, cats, images), _ms_interactions(users, ids[:9]),
                    {"source": "test", "simulated": False}, categories=BAR_CATEGORIES)


def fmnist_catalogue_with_models(cfg, recommender_uri: str, generator_uri: str, classifiers_lake: str = ""):
    """`prepare` cfg's simulated Fashion-MNIST catalogue, then write untrained-but-real checkpoints: DVBPR shaped by
    cfg.recommender (with the catalogue's items indexed) and the small LSGAN (z 8, 28x28 grey); with
    `classifiers_lake`, `train-classifiers` there too (`copy_classifiers` shares them with other lakes). Returns the
    loaded catalogue (with images). Needs `needs_fmnist`."""
    import dataclasses

    from fashiongen.data.contract import load_catalogue
    from fashiongen.data.prepare import prepare_catalogue
    from fashiongen.models.dvbpr import DVBPR
    from fashiongen.models.gan import ConditionalGAN
    from fashiongen.training.classifier import train_classifiers

    prepare_catalogue(cfg)
    catalogue = load_catalogue(cfg.data.catalogue_uri)
    recommender = DVBPR.from_config(cfg.recommender)
    recommender.build_for(catalogue)
    recommender.index_catalogue(catalogue.images)
    recommender.save(recommender_uri)
    ConditionalGAN("small", 8, catalogue.categories, (1, 28, 28)).save(generator_uri)
    if classifiers_lake:
        train_classifiers(dataclasses.replace(cfg, lake_uri=classifiers_lake), catalogue)
    return catalogue


def copy_classifiers(source_lake: str, lake: str) -> None:
    """The category classifiers `train-classifiers` wrote in source_lake, into lake when it has none: they belong to
    the catalogue, so the tests' many lakes of one catalogue share one training."""
    from fashiongen.lake.paths import CLASSIFIER_ROLES

    for role in CLASSIFIER_ROLES:
        source, target = LakePaths(source_lake).classifier_model(role), LakePaths(lake).classifier_model(role)
        if not storage.exists(target):
            storage.write_bytes(target, storage.read_bytes(source))


# --- catalogues in memory -------------------------------------------------------------------------------------

def blob_image_set(n: int = 120, categories: int = 3):
    """An importer's ImageSet of `blob_images(n)`: ids it0000.., category k % categories named c0, c1, ..."""
    from fashiongen.data.fashion_mnist import ImageSet

    return ImageSet(item_ids=np.array([f"it{k:04d}" for k in range(n)]), images=blob_images(n),
                    item_category=np.arange(n) % categories, categories=[f"c{k}" for k in range(categories)])


def random_catalogue(seed: int, num_users: int = 23, num_items: int = 37) -> SimpleNamespace:
    """A Catalogue-shaped namespace for the AUC functions: each user has 1-6 distinct train items plus distinct
    validation/test items; about 40% of the items are cold."""
    rng = np.random.default_rng(seed)
    tu, ti, val, test = [], [], [], []
    for u in range(num_users):
        items = rng.choice(num_items, size=int(rng.integers(3, 9)), replace=False)
        tu += [u] * (len(items) - 2)
        ti += list(items[2:])
        val.append(items[0])
        test.append(items[1])
    return SimpleNamespace(num_users=num_users, num_items=num_items, train_users=np.array(tu), train_items=np.array(ti),
                           validation_item=np.array(val), test_item=np.array(test),
                           is_cold=rng.random(num_items) < 0.4)


# --- designs lake --------------------------------------------------------------------------------------------

def fake_designs(run_date: str, users: list[str], categories=("Dress", "Shirt"), top_k: int = 2,
                 model_version: str = "m1") -> pa.Table:
    """A designs table (DESIGNS_SCHEMA) for every user x category x rank, with tiny random PNGs."""
    rows = []
    rng = np.random.default_rng(0)
    for u in users:
        for c in categories:
            for rank in range(1, top_k + 1):
                png = encode_png(rng.integers(0, 256, (1, 4, 4, 1), dtype=np.uint8)[0])
                rows.append({"run_date": run_date, "model_version": model_version, "pair_id": make_pair_id(u, c),
                             "user_id": u, "category": c, "rank": rank, "score": float(10 - rank), "realism": 0.5,
                             "latent": [0.1, -0.2, 0.3], "image_png": png, "image_uri": None,
                             "dataset_top_item_ids": ["i1", "i2"], "dataset_top_scores": [1.0, 0.5],
                             "lift": 2.0, "oracle_score": None, "dataset_oracle_scores": None})
    return pa.Table.from_pylist(rows, schema=DESIGNS_SCHEMA)


def write_complete(lake: Lake | str, run_date: str, users: list[str], model_version: str = "m1") -> dict:
    """A published run of `fake_designs` in two files; returns its record (reader.run_info)."""
    write_designs(fake_designs(run_date, users[: len(users) // 2], model_version=model_version), lake, run_date)
    write_designs(fake_designs(run_date, users[len(users) // 2:], model_version=model_version), lake, run_date)
    return publish_run(lake, run_date, model_version=model_version, config={"generation": {"steps": 10}})


def lake_at(uri: str, tmp_path: Path) -> Lake:
    """The lake at `uri`; an s3:// one gets an SQLite Iceberg catalog of its own under tmp_path (as a cluster would
    name a shared catalog), a local one the embedded default."""
    return Lake(uri, IcebergConfig(catalog_uri=f"sqlite:///{tmp_path}/iceberg-catalog.db")) \
        if uri.startswith("s3://") else Lake(uri)


def catalog_override(lake: Lake) -> list[str]:
    """The command-line settings that point a command at `lake`'s catalog."""
    return [f"lake_uri={lake.uri}"] + ([f"iceberg.catalog_uri={lake.iceberg.catalog_uri}"]
                                       if lake.iceberg.catalog_uri else [])