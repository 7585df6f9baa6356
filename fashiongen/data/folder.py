"""Bring your own catalogue: a folder of images plus an interactions file.

    images_dir/<category>/<any/sub/path>/<name>.<png|jpg|jpeg|webp|bmp|gif>
    interactions.csv or .parquet with columns user_id, item_id, ts

category = the first-level subfolder; item_id = the path relative to images_dir without its extension
(e.g. "shoes/red/sneaker-1"). Ids are plain strings in the tables: nothing later uses them as paths.
ts is a unix time in seconds, or an ISO-8601 date-time string (UTC when no zone is given).
Every image becomes a PNG of one mode (RGB if any image has colour, else L) and one size
(data.image_size when set; otherwise images of a size other than the most common one are quarantined).
"""
from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from PIL import Image, UnidentifiedImageError

from fashiongen import storage
from fashiongen.data.contract import INTERACTIONS_SCHEMA, ITEMS_SCHEMA, CatalogueError, ImportedCatalogue, Quarantine
from fashiongen.data.images import ImageError, decode_image, encode_png
from fashiongen.errors import FashiongenError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _scan(root: Path, quarantine: Quarantine) -> tuple[list[str], list[tuple[str, str, bytes]]]:
    """(categories, [(item_id, category, bytes)]) from the folder tree, sorted by item_id."""
    categories = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES or any(
                part.startswith(".") for part in path.relative_to(root).parts):
            continue
        rel = path.relative_to(root)
        item_id = rel.with_suffix("").as_posix()
        if len(rel.parts) < 2:
            quarantine.add("items", item_id, f"image {rel} is not inside a category subfolder of {root} (move it "
                           "into <category>/)")
            continue
        found.append((item_id, rel.parts[0], path.read_bytes()))
    dupes = sorted(i for i, n in Counter(f[0] for f in found).items() if n > 1)
    if dupes:
        raise CatalogueError(f"two images map to item_id {dupes[0]!r} (same path, different extension): rename one")
    return categories, found


def _header(data: bytes) -> tuple[str, tuple[int, int]] | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.mode, img.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def import_images(images_dir: str, image_size: int = 0, quarantine: Quarantine | None = None) -> tuple[pa.Table, list[str], Quarantine]:
    """(items table, categories, quarantine) for a folder of images."""
    root = Path(images_dir)
    if not images_dir or not root.is_dir():
        raise FashiongenError(f"data.images_dir {images_dir!r} is not a folder: set it to a folder with one "
                              "subfolder of images per category")
    quarantine = quarantine or Quarantine()
    categories, found = _scan(root, quarantine)
    if not categories:
        raise CatalogueError(f"{root} has no category subfolders: put images under {root}/<category>/")
    headers = [_header(data) for _, _, data in found]
    valid = [h for h in headers if h is not None]
    mode = "RGB" if any(m not in GRAY_MODES for m, _ in valid) else "L"
    size = (image_size, image_size) if image_size else (Counter(s for _, s in valid).most_common(1)[0][0] if valid else None)
    ids, cats, pngs = [], [], []
    for (item_id, category, data), header in zip(found, headers):
        if header is None:
            quarantine.add("items", item_id, "corrupt image (undecodable bytes; re-export the image as PNG or JPEG)")
            continue
        if not image_size and header[1] != size:
            quarantine.add("items", item_id, f"image is {header[1][0]}x{header[1][1]}, most images are "
                           f"{size[0]}x{size[1]} (set data.image_size to resize on import)")
            continue
        try:
            pixels = decode_image(data, mode=mode, size=size)
        except ImageError as exc:
            quarantine.add("items", item_id, f"corrupt image ({exc}; re-export the image as PNG or JPEG)")
            continue
        ids.append(item_id)
        cats.append(category)
        pngs.append(encode_png(pixels))
    width, height = size if size else (0, 0)
    items = pa.table({"item_id": ids, "category": cats, "image_png": pa.array(pngs, pa.binary()),
                      "width": pa.array([width] * len(ids), pa.int32()),
                      "height": pa.array([height] * len(ids), pa.int32())}, schema=ITEMS_SCHEMA)
    return items, categories, quarantine


def _timestamps(values: pd.Series, uri: str) -> pd.Series:
    """UTC timestamps from datetimes, unix seconds (numbers or numeric strings) or ISO-8601 strings; a
    CatalogueError names the first row whose ts is missing or unparseable."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = (values if values.dt.tz is not None else values.dt.tz_localize("UTC")).dt.tz_convert("UTC")
    else:
        numeric = pd.to_numeric(values, errors="coerce")
        parsed = pd.to_datetime(numeric, unit="s", utc=True, errors="coerce")
        if not pd.api.types.is_numeric_dtype(values):
            iso = pd.to_datetime(values.where(numeric.isna()), utc=True, errors="coerce", format="ISO8601")
            parsed = parsed.where(parsed.notna(), iso)
    bad = parsed.isna()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = values.iloc[row]
        shown = "(empty)" if pd.isna(value) else repr(str(value))
        raise CatalogueError(f"{uri} row {row}: ts {shown} is not a unix time in seconds or an ISO-8601 date-time "
                             "(e.g. 2024-03-01T12:00:00Z)")
    return parsed


def read_interactions(uri: str) -> pa.Table:
    """An interactions CSV or Parquet file (user_id, item_id, ts) in the contract schema."""
    if not uri or not storage.exists(uri):
        raise FashiongenError(f"data.interactions_path {uri!r} does not exist: point it to a CSV or Parquet file "
                              "with columns user_id, item_id, ts")
    if uri.lower().endswith((".parquet", ".pq")):
        table = storage.read_table(uri)
    elif uri.lower().endswith(".csv"):
        options = pacsv.ConvertOptions(column_types={"user_id": pa.string(), "item_id": pa.string()})
        try:
            table = pacsv.read_csv(io.BytesIO(storage.read_bytes(uri)), convert_options=options)
        except pa.ArrowInvalid as exc:
            raise CatalogueError(f"{uri} is not a readable CSV ({exc})") from None
    else:
        raise FashiongenError(f"data.interactions_path {uri!r}: use a .csv or .parquet file")
    missing = [c for c in INTERACTIONS_SCHEMA.names if c not in table.column_names]
    if missing:
        raise CatalogueError(f"{uri} lacks column(s) {missing}: interactions need user_id, item_id, ts")
    frame = table.select(INTERACTIONS_SCHEMA.names).to_pandas()
    frame["user_id"], frame["item_id"] = frame["user_id"].astype(str), frame["item_id"].astype(str)
    frame["ts"] = _timestamps(frame["ts"], uri)
    return pa.Table.from_pandas(frame, schema=INTERACTIONS_SCHEMA, preserve_index=False)


def import_folder(images_dir: str, interactions_path: str, image_size: int = 0) -> ImportedCatalogue:
    """A folder of images and its interactions file, ready for `write_catalogue`."""
    items, categories, quarantine = import_images(images_dir, image_size)
    interactions = read_interactions(interactions_path)
    meta = {"source": "folder", "simulated": False, "images_dir": images_dir, "interactions_path": interactions_path}
    return ImportedCatalogue(items=items, interactions=interactions, meta=meta, categories=categories,
                             quarantine=quarantine)
