"""The paper's data files (e.g. `AmazonFashion6ImgPartitioned.npy`, http://cseweb.ucsd.edu/~wckang/DVBPR/).

A 6-element object array [user_train, user_validation, user_test, Item, usernum, itemnum] saved as a
Python-2 pickle: user_* map a user index to a list of {'productid': item index, ...}; Item[i] holds
'imgs' (JPEG bytes) and, in AmazonFashion, 'c' (a 6-dim one-hot category). Loaded with
encoding='bytes', so keys may be bytes. The file's own split (one validation and one test item per
user) is kept. The file carries no timestamps: ts = 2000-01-01 + the position in the user's list (s).

Unpickling can run arbitrary code, so the file is read only with data.allow_pickle=true
(`fashiongen prepare --allow-pickle`), for files from a source you trust.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fashiongen.data.contract import ITEMS_SCHEMA, ImportedCatalogue, Quarantine
from fashiongen.data.images import ImageError, decode_image, encode_png
from fashiongen.errors import FashiongenError

# One-hot index -> category, read from the official GAN sample grids (paper.md §8.2).
AMAZON_FASHION_CATEGORIES = ["men's tops", "women's tops", "men's bottoms", "women's bottoms", "men's shoes",
                             "women's shoes"]
UNCATEGORISED = "all"
PAPER_IMAGE_SIZE = 224
BASE_TS_S = 946_684_800  # 2000-01-01T00:00:00Z


def _field(record, name: str):
    """A record's field under a str or a bytes key (Python-2 pickles loaded with encoding='bytes')."""
    if isinstance(record, dict):
        for key in (name, name.encode()):
            if key in record:
                return record[key]
    return None


def _load(path: str, allow_pickle: bool) -> np.ndarray:
    if not allow_pickle:
        raise FashiongenError(
            f"{path} is a pickle (the paper's .npy format): unpickling a file can run arbitrary code on this machine. "
            "Load it only if you trust its source, with `fashiongen prepare --allow-pickle` (or data.allow_pickle=true)")
    if not Path(path).is_file():
        raise FashiongenError(f"data.npy_path {path!r} does not exist: download AmazonFashion6ImgPartitioned.npy "
                              "from http://cseweb.ucsd.edu/~wckang/DVBPR/ and set data.npy_path")
    try:
        data = np.load(path, allow_pickle=True, encoding="bytes")
    except Exception as exc:  # a broken pickle raises anything from EOFError to UnpicklingError
        raise FashiongenError(f"cannot read {path} as the paper's .npy ({exc.__class__.__name__}: {exc})") from None
    if getattr(data, "shape", None) != (6,):
        raise FashiongenError(f"{path} is not the paper's format: expected a 6-element array [user_train, "
                              "user_validation, user_test, Item, usernum, itemnum]")
    return data


def _user_rows(user_lists, split: str, quarantine: Quarantine) -> list[tuple[str, str, int, str]]:
    rows = []
    for user, records in user_lists.items():
        for pos, record in enumerate(records):
            item = _field(record, "productid")
            if item is None:
                quarantine.add("interactions", f"u{user}|?", f"{split} record without 'productid'")
                continue
            rows.append((f"u{user}", f"i{int(item)}", BASE_TS_S + pos, split))
    return rows


def import_amazon_npy(path: str, allow_pickle: bool, image_size: int = 0) -> ImportedCatalogue:
    """Items (JPEG -> RGB PNG at image_size, default the paper's 224), interactions and the file's split."""
    user_train, user_validation, user_test, item_data, _, _ = _load(path, allow_pickle)
    size = image_size or PAPER_IMAGE_SIZE
    quarantine = Quarantine()
    has_categories = any(_field(rec, "c") is not None for rec in _items(item_data).values())
    categories = AMAZON_FASHION_CATEGORIES if has_categories else [UNCATEGORISED]
    ids, cats, pngs = [], [], []
    for index, record in _items(item_data).items():
        item_id = f"i{index}"
        jpeg, onehot = _field(record, "imgs"), _field(record, "c")
        if isinstance(jpeg, str):
            jpeg = jpeg.encode("latin1")
        if not isinstance(jpeg, (bytes, bytearray)):
            quarantine.add("items", item_id, "no 'imgs' bytes in the record")
            continue
        if has_categories:
            onehot = np.asarray(onehot if onehot is not None else [], dtype=np.float64).reshape(-1)
            if len(onehot) != len(categories) or onehot.sum() != 1:
                quarantine.add("items", item_id, f"category 'c' is not a {len(categories)}-dim one-hot vector")
                continue
        try:
            pixels = decode_image(bytes(jpeg), mode="RGB", size=(size, size))
        except ImageError as exc:
            quarantine.add("items", item_id, f"corrupt image ({exc})")
            continue
        ids.append(item_id)
        cats.append(categories[int(np.argmax(onehot))] if has_categories else UNCATEGORISED)
        pngs.append(encode_png(pixels))
    items = pa.table({"item_id": ids, "category": cats, "image_png": pa.array(pngs, pa.binary()),
                      "width": pa.array([size] * len(ids), pa.int32()), "height": pa.array([size] * len(ids), pa.int32())},
                     schema=ITEMS_SCHEMA)
    rows = (_user_rows(user_train, "train", quarantine) + _user_rows(user_validation, "validation", quarantine)
            + _user_rows(user_test, "test", quarantine))
    users, item_ids, ts, splits = (list(col) for col in zip(*rows)) if rows else ([], [], [], [])
    interactions = pa.table({"user_id": users, "item_id": item_ids,
                             "ts": pa.array(np.asarray(ts, np.int64) * 1000, pa.timestamp("ms", tz="UTC"))})
    fixed_split = pa.table({"user_id": users, "item_id": item_ids, "split": splits})
    meta = {"source": "amazon_npy", "simulated": False, "npy": Path(path).name, "image_resized_to": size}
    return ImportedCatalogue(items=items, interactions=interactions, meta=meta, categories=categories,
                             fixed_split=fixed_split, quarantine=quarantine)


def _items(item_data) -> dict:
    """Item may be a dict (index -> record) or a list of records."""
    return item_data if isinstance(item_data, dict) else dict(enumerate(item_data))
