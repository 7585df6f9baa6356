"""Importers: Fashion-MNIST (IDX), the paper's pickled .npy, a folder of images; and their bad input."""
from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

from fashiongen.data.amazon_npy import AMAZON_FASHION_CATEGORIES, import_amazon_npy
from fashiongen.data.contract import CatalogueError, load_catalogue
from fashiongen.data.fashion_mnist import CLASSES, items_table, load_fashion_mnist, stratified_subset
from fashiongen.data.folder import import_folder, import_images, read_interactions
from fashiongen.data.images import decode_image
from fashiongen.errors import FashiongenError
from fixtures import FMNIST, needs_fmnist


def _write_idx(root: Path, train: int = 30, test: int = 10, images_bytes: int | None = None) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("t10k", test)):
        pixels = rng.integers(0, 256, n * 28 * 28, dtype=np.uint8).tobytes()
        with gzip.open(root / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(b"\0" * 16 + pixels[:images_bytes])
        with gzip.open(root / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(b"\0" * 8 + (np.arange(n) % 10).astype(np.uint8).tobytes())


def test_fashion_mnist_reads_idx_and_checks_shapes(tmp_path, monkeypatch):
    monkeypatch.setattr("fashiongen.data.fashion_mnist.FILES", {
        "train-images-idx3-ubyte.gz": (16, 30), "train-labels-idx1-ubyte.gz": (8, 30),
        "t10k-images-idx3-ubyte.gz": (16, 10), "t10k-labels-idx1-ubyte.gz": (8, 10)})
    _write_idx(tmp_path)
    image_set = load_fashion_mnist(str(tmp_path))
    assert image_set.images.shape == (40, 28, 28, 1) and image_set.categories == CLASSES
    assert image_set.item_ids[0] == "fmnist-00000" and image_set.item_ids[-1] == "fmnist-00039"
    table = items_table(image_set)
    assert table.column("category").to_pylist()[:2] == ["T-shirt/top", "Trouser"]
    _write_idx(tmp_path, images_bytes=100)  # truncated
    with pytest.raises(FashiongenError, match="truncated"):
        load_fashion_mnist(str(tmp_path))


def test_missing_fashion_mnist_dir_names_the_fix(tmp_path):
    with pytest.raises(FashiongenError, match="apt-get install dataset-fashion-mnist.*data.fashion_mnist_dir"):
        load_fashion_mnist(str(tmp_path / "nope"))


def test_stratified_subset_is_deterministic_and_balanced():
    labels = np.repeat(np.arange(10), 100)
    a, b = stratified_subset(labels, 95), stratified_subset(labels, 95)
    assert np.array_equal(a, b) and len(a) == 95
    assert set(np.bincount(labels[a], minlength=10)) <= {9, 10}


@needs_fmnist
def test_real_fashion_mnist():
    image_set = load_fashion_mnist(FMNIST)
    assert image_set.images.shape == (70000, 28, 28, 1)
    assert np.array_equal(np.bincount(image_set.item_category), np.full(10, 7000))
    assert abs(image_set.images[:60000].mean() - 72.94) < 0.01
    subset = load_fashion_mnist(FMNIST, max_items=500)
    assert len(subset.item_ids) == 500 and np.array_equal(np.bincount(subset.item_category), np.full(10, 50))
    # a subset keeps the ids (and pixels) of the full set
    full_pos = np.searchsorted(image_set.item_ids, subset.item_ids)
    assert np.array_equal(image_set.images[full_pos], subset.images)


def _jpeg(colour: tuple[int, int, int], size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def _write_npy(path: Path) -> None:
    """A tiny file in the paper's format: Python-2 style dicts with bytes keys, JPEG bytes, one-hot b'c'."""
    items = {}
    for i in range(8):
        onehot = np.zeros(6)
        onehot[i % 6] = 1
        items[i] = {b"productid": b"B%03d" % i, b"imgs": _jpeg((30 * i, 50, 90)), b"c": onehot}
    items[7][b"imgs"] = b"not a jpeg"  # corrupt: quarantined
    train = {u: [{b"productid": (u + k) % 7} for k in range(3)] for u in range(4)}
    validation = {u: [{b"productid": (u + 3) % 7}] for u in range(4)}
    test = {u: [{b"productid": (u + 4) % 7}] for u in range(4)}
    test[3] = [{b"productid": 7}]  # the corrupt item: user 3 loses its test item
    data = np.empty(6, dtype=object)
    data[:] = [train, validation, test, items, 4, 8]
    np.save(path, data, allow_pickle=True)


def test_amazon_npy_needs_allow_pickle(tmp_path):
    path = tmp_path / "AmazonFashion6ImgPartitioned.npy"
    _write_npy(path)
    with pytest.raises(FashiongenError, match="arbitrary code.*--allow-pickle"):
        import_amazon_npy(str(path), allow_pickle=False)


def test_amazon_npy_keeps_fixed_split_and_categories(tmp_path):
    path = tmp_path / "AmazonFashion6ImgPartitioned.npy"
    _write_npy(path)
    imported = import_amazon_npy(str(path), allow_pickle=True, image_size=32)
    assert imported.categories == AMAZON_FASHION_CATEGORIES
    uri = str(tmp_path / "cat")
    meta = imported.write(uri)
    assert meta["split"] == "fixed by source" and meta["image"] == {"mode": "RGB", "width": 32, "height": 32}
    assert meta["quarantine"] == {"items: corrupt image": 1, "users: fixed split leaves 1 validation and 0 test "
                                  "interaction(s) and needs 1 + 1 + at least 1 train": 1, "interactions: unknown "
                                  "item_id": 1}
    catalogue = load_catalogue(uri)
    assert catalogue.images.shape == (7, 32, 32, 3)
    assert list(catalogue.user_ids) == ["u0", "u1", "u2"]
    assert catalogue.item_ids[catalogue.test_item].tolist() == ["i4", "i5", "i6"]
    assert catalogue.item_ids[catalogue.validation_item].tolist() == ["i3", "i4", "i5"]
    assert catalogue.categories[catalogue.item_category[list(catalogue.item_ids).index("i4")]] == "men's shoes"


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    for category in ("shoes", "tops"):
        (root / category / "sub").mkdir(parents=True)
        for k in range(4):
            Image.new("RGB", (20, 20), (k * 40, 10, 200)).save(root / category / "sub" / f"p{k}.png")
    Image.new("L", (20, 20), 128).save(root / "tops" / "gray.jpg")  # gray: converted to RGB
    Image.new("RGB", (31, 20)).save(root / "tops" / "wide.png")  # wrong size: quarantined
    (root / "shoes" / "broken.png").write_bytes(b"\x89PNG garbage")  # corrupt: quarantined
    Image.new("RGB", (20, 20)).save(root / "loose.png")  # no category: quarantined
    return root


def _interactions_csv(path: Path, rows: list[tuple[str, str, object]]) -> str:
    pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).to_csv(path, index=False)
    return str(path)


def test_folder_import_with_bad_records_quarantined(tmp_path):
    root = _folder(tmp_path)
    rows = [("alice", f"shoes/sub/p{k}", 1_700_000_000 + k) for k in range(4)]
    rows += [("bob", f"tops/sub/p{k}", 1_700_000_000 + k) for k in range(3)]
    rows += [("bob", "tops/sub/p0", 1_700_000_100)]  # duplicate
    rows += [("bob", "tops/nonexistent", 1_700_000_200)]  # unknown item
    rows += [("carol", "tops/gray", 1_700_000_000), ("carol", "shoes/sub/p1", 1_700_000_001)]  # too few
    imported = import_folder(str(root), _interactions_csv(tmp_path / "i.csv", rows))
    meta = imported.write(str(tmp_path / "cat"))
    assert meta["categories"] == ["shoes", "tops"] and meta["image"]["mode"] == "RGB"
    q = meta["quarantine"]
    assert q["items: corrupt image"] == 1 and q["items: image is 31x20, most images are 20x20"] == 1
    assert q["items: image loose.png is not inside a category subfolder of " + str(root)] == 1
    assert q["interactions: duplicate interaction"] == 1 and q["interactions: unknown item_id"] == 1
    assert q["users: user has 2 interaction(s); leave-one-out needs at least 3"] == 1
    catalogue = load_catalogue(str(tmp_path / "cat"))
    assert "tops/gray" in catalogue.item_ids and catalogue.images.shape[1:] == (20, 20, 3)
    assert list(catalogue.user_ids) == ["alice", "bob"]
    reasons = pd.read_parquet(tmp_path / "cat" / "quarantine.parquet")
    assert set(reasons["record_id"]) >= {"shoes/broken", "tops/wide", "loose", "bob|tops/nonexistent", "carol"}


def test_folder_image_size_resizes_instead_of_quarantining(tmp_path):
    root = _folder(tmp_path)
    rows = [("alice", f"tops/sub/p{k}", "2024-03-01T12:00:0%dZ" % k) for k in range(3)] + [("alice", "tops/wide", "2024-03-02")]
    meta = import_folder(str(root), _interactions_csv(tmp_path / "i.csv", rows), image_size=16).write(str(tmp_path / "c"))
    assert meta["image"]["width"] == 16 and "items: image is 31x20" not in str(meta["quarantine"])
    assert meta["counts"]["interactions"] == 4


def test_folder_empty_category_is_an_error(tmp_path):
    root = _folder(tmp_path)
    (root / "hats").mkdir()
    rows = [("alice", f"tops/sub/p{k}", 1) for k in range(3)]
    imported = import_folder(str(root), _interactions_csv(tmp_path / "i.csv", rows))
    with pytest.raises(CatalogueError, match="category 'hats' has no"):
        imported.write(str(tmp_path / "cat"))


def test_interactions_file_errors_name_the_record(tmp_path):
    with pytest.raises(FashiongenError, match="does not exist"):
        read_interactions(str(tmp_path / "none.csv"))
    pd.DataFrame({"user": ["a"], "item_id": ["x"], "ts": [1]}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(CatalogueError, match=r"lacks column\(s\) \['user_id'\]"):
        read_interactions(str(tmp_path / "cols.csv"))
    bad_ts = _interactions_csv(tmp_path / "ts.csv", [("a", "x", "2024-01-01"), ("a", "y", "yesterday")])
    with pytest.raises(CatalogueError, match="row 1: ts 'yesterday'"):
        read_interactions(bad_ts)
    pa_table = pa.table({"user_id": [1, 2], "item_id": ["x", "y"], "ts": [0, 86400]})
    import pyarrow.parquet as pq
    pq.write_table(pa_table, tmp_path / "i.parquet")
    back = read_interactions(str(tmp_path / "i.parquet"))
    assert back.column("user_id").to_pylist() == ["1", "2"]
    assert back.column("ts").to_pylist()[1].day == 2


def test_16_bit_png_is_scaled_not_saturated(tmp_path):
    gradient = (np.arange(32 * 32, dtype=np.uint32).reshape(32, 32) * 64).astype(np.uint16)  # 0 .. 65472
    (tmp_path / "shop" / "tops").mkdir(parents=True)
    Image.fromarray(gradient).save(tmp_path / "shop" / "tops" / "deep.png")
    assert Image.open(tmp_path / "shop" / "tops" / "deep.png").mode in ("I;16", "I")
    items, _, quarantine = import_images(str(tmp_path / "shop"))
    pixels = decode_image(items.column("image_png")[0].as_py())[:, :, 0]
    assert not quarantine.rows and pixels.min() == 0 and pixels.max() == 255
    assert np.array_equal(pixels, np.rint(gradient / 257).astype(np.uint8))  # the gradient stays a gradient
    assert len(np.unique(pixels)) > 200 and (pixels == 255).mean() < 0.01
    rgb = decode_image((tmp_path / "shop" / "tops" / "deep.png").read_bytes(), mode="RGB")
    assert np.array_equal(rgb[:, :, 1], pixels)


def test_bad_ts_error_names_the_bad_row_among_unix_times(tmp_path):
    mixed = _interactions_csv(tmp_path / "mixed.csv", [("a", "x", 1_700_000_000), ("a", "y", "2024-03-01T12:00:00Z")])
    assert [t.year for t in read_interactions(mixed).column("ts").to_pylist()] == [2023, 2024]
    bad = _interactions_csv(tmp_path / "bad.csv", [("a", "x", 1_700_000_000), ("a", "y", 1_700_000_001),
                                                   ("a", "z", "yesterday")])
    with pytest.raises(CatalogueError, match=r"bad.csv row 2: ts 'yesterday' is not"):
        read_interactions(bad)
