"""A tiny catalogue with an easy planted visual signal, for the recommender tests."""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from fashiongen.data.contract import write_catalogue
from fashiongen.data.images import encode_png

SIZE = 8
CATEGORIES = ["a", "b"]


def planted_catalogue(uri: str, num_items: int = 120, num_users: int = 40, per_user: int = 8, seed: int = 0) -> None:
    """Grey 8x8 images with a bright bar in the left or right half (a random category each). Half the users pick
    only left-bar items, half only right-bar items: the image alone predicts a user's items."""
    rng = np.random.default_rng(seed)
    side = np.arange(num_items) % 2  # 0 = left bar, 1 = right bar
    ids, cats, pngs = [], [], []
    for k in range(num_items):
        img = rng.integers(0, 40, (SIZE, SIZE, 1), dtype=np.uint8)
        col = int(rng.integers(0, 2)) + (0 if side[k] == 0 else SIZE // 2 + 1)
        img[1:SIZE - 1, col:col + 2] = 230
        ids.append(f"item-{k:04d}")
        cats.append(CATEGORIES[int(rng.integers(0, 2))])
        pngs.append(encode_png(img))
    items = pa.table({"item_id": ids, "category": cats, "image_png": pngs,
                      "width": pa.array([SIZE] * num_items, pa.int32()),
                      "height": pa.array([SIZE] * num_items, pa.int32())})
    users, picked = [], []
    for u in range(num_users):
        pool = np.flatnonzero(side == u % 2)
        for i in rng.choice(pool, size=per_user, replace=False):
            users.append(f"user-{u:03d}")
            picked.append(ids[i])
    inter = pa.table({"user_id": users, "item_id": picked,
                      "ts": pa.array(np.arange(len(users), dtype="int64"), pa.timestamp("ms", tz="UTC"))})
    write_catalogue(uri, items, inter, {"source": "test", "simulated": False}, categories=CATEGORIES)
