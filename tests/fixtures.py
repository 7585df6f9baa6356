"""Builders shared by the tests (plain functions; the pytest fixtures built on them are in conftest.py).

Import them as `from fixtures import ...`: tests/ is on sys.path because tests/conftest.py lives there (pytest's
default "prepend" import mode; test module basenames are unique across the folders, no __init__.py files).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from fashiongen.data.images import encode_png
from fashiongen.lake import DESIGNS_SCHEMA, make_pair_id, publish_run, write_designs

REPO = Path(__file__).resolve().parent.parent  # the repository root (configs/, README.md, bench/, cluster/)


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


def write_complete(lake: str, run_date: str, users: list[str], model_version: str = "m1") -> dict:
    """A published run of `fake_designs` in two files; returns its manifest."""
    write_designs(fake_designs(run_date, users[: len(users) // 2], model_version=model_version), lake, run_date)
    write_designs(fake_designs(run_date, users[len(users) // 2:], model_version=model_version), lake, run_date)
    return publish_run(lake, run_date, model_version=model_version, config={"generation": {"steps": 10}})
