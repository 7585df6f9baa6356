"""Fashion-MNIST (Zalando, MIT licence) from the Debian package `dataset-fashion-mnist`: 70,000 real 28x28
grayscale images in 10 categories. Items are train images 0..59999 then t10k images, ids "fmnist-00000"..."""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fashiongen.data.contract import ITEMS_SCHEMA
from fashiongen.data.images import encode_png
from fashiongen.errors import FashiongenError

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = {  # name -> (header bytes, expected count)
    "train-images-idx3-ubyte.gz": (16, 60000), "train-labels-idx1-ubyte.gz": (8, 60000),
    "t10k-images-idx3-ubyte.gz": (16, 10000), "t10k-labels-idx1-ubyte.gz": (8, 10000),
}
SIDE = 28
SUBSET_SEED = 0  # fixed: a given max_items always selects the same items


@dataclass
class ImageSet:
    """Items as arrays: what the simulator needs before they become an items table."""

    item_ids: np.ndarray  # (N,) str
    images: np.ndarray  # (N, H, W, C) uint8
    item_category: np.ndarray  # (N,) int64 index into categories
    categories: list[str]


def _read_idx(path: Path, header: int, count: int, item_shape: tuple[int, ...]) -> np.ndarray:
    try:
        with gzip.open(path) as f:
            raw = np.frombuffer(f.read(), np.uint8, offset=header)
    except (OSError, EOFError, ValueError) as exc:
        raise FashiongenError(f"cannot read {path} ({exc}): reinstall it with `apt-get install --reinstall "
                              "dataset-fashion-mnist`") from None
    size = count * int(np.prod(item_shape, dtype=np.int64))
    if raw.size != size:
        raise FashiongenError(f"{path} holds {raw.size} bytes of data, expected {size} ({count} x {item_shape}): "
                              "the file is truncated or not Fashion-MNIST; reinstall `dataset-fashion-mnist`")
    return raw.reshape((count, *item_shape))


def stratified_subset(labels: np.ndarray, max_items: int, seed: int = SUBSET_SEED) -> np.ndarray:
    """Sorted indices of a deterministic subset of `max_items` items keeping each class's share."""
    if max_items <= 0 or max_items >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    quota = np.floor(sizes * max_items / len(labels)).astype(np.int64)
    quota[np.argsort(-(sizes * max_items / len(labels) - quota), kind="stable")[: max_items - quota.sum()]] += 1
    picks = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks))


def load_fashion_mnist(directory: str, max_items: int = 0) -> ImageSet:
    """All 70k images (or a stratified subset of max_items) with their class as category."""
    root = Path(directory)
    missing = [name for name in FILES if not (root / name).is_file()]
    if missing:
        raise FashiongenError(f"Fashion-MNIST not found: {root} lacks {missing}. Install it with "
                              "`apt-get install dataset-fashion-mnist` or set data.fashion_mnist_dir to the folder "
                              "holding the four IDX .gz files")
    parts = []
    for split in ("train", "t10k"):
        header, count = FILES[f"{split}-images-idx3-ubyte.gz"]
        images = _read_idx(root / f"{split}-images-idx3-ubyte.gz", header, count, (SIDE, SIDE))
        header, count = FILES[f"{split}-labels-idx1-ubyte.gz"]
        labels = _read_idx(root / f"{split}-labels-idx1-ubyte.gz", header, count, ())
        if labels.max() >= len(CLASSES):
            raise FashiongenError(f"{root}/{split}-labels-idx1-ubyte.gz has label {labels.max()}, expected 0-9: "
                                  "reinstall `dataset-fashion-mnist`")
        parts.append((images, labels))
    images = np.concatenate([p[0] for p in parts])[:, :, :, None]
    labels = np.concatenate([p[1] for p in parts]).astype(np.int64)
    keep = stratified_subset(labels, max_items)
    ids = np.char.add("fmnist-", np.char.zfill(keep.astype(str), 5))
    return ImageSet(item_ids=ids, images=images[keep], item_category=labels[keep], categories=list(CLASSES))


def items_table(image_set: ImageSet) -> pa.Table:
    """Items in the contract schema (PNG bytes)."""
    n, h, w = image_set.images.shape[:3]
    return pa.table({
        "item_id": pa.array(image_set.item_ids.astype(str)),
        "category": pa.array(np.asarray(image_set.categories, dtype=object)[image_set.item_category].tolist()),
        "image_png": pa.array([encode_png(img) for img in image_set.images], pa.binary()),
        "width": pa.array(np.full(n, w, np.int32)), "height": pa.array(np.full(n, h, np.int32)),
    }, schema=ITEMS_SCHEMA)
