"""The design stage of the designs job: `DesignActor` runs the preference engine on batches of pairs (models loaded
once per actor), `encode_designs` turns its raw images into PNGs on CPU tasks, off the (GPU) actors."""
from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pyarrow as pa

from fashiongen import storage
from fashiongen.config import DesignConfig, from_dict
from fashiongen.faults import ENV as FAULTS_ENV
from fashiongen.generation.plan import PAIRS_SCHEMA
from fashiongen.lake import layout
from fashiongen.lake.paths import LakePaths

FAILURES_SCHEMA = PAIRS_SCHEMA.append(pa.field("reason", pa.string()))
RAW_COLUMNS = ("image_raw", "image_shape")  # between the actor and the PNG stage only


class DesignActor:
    """Loads the recommender, generator, catalogue index and (simulated catalogues) the oracle once, then designs
    each batch of pairs with the preference engine. Rows leave with raw uint8 images; PNGs are made downstream."""

    def __init__(self, recommender_uri: str, generator_uri: str, catalogue_uri: str, design: dict,
                 run_date: str, model_version: str, failures_uri: str, faults: dict[str, int] | None = None,
                 judge_uri: str = "", guard_uri: str = "", designer_uri: str = "",
                 ensemble_uris: list[str] | None = None, progress=None):
        import torch

        from fashiongen.data.contract import load_catalogue
        from fashiongen.data.oracle import load_truth
        from fashiongen.generation.engine import PreferenceEngine, category_mapping
        from fashiongen.models.classifier import load_classifier
        from fashiongen.models.contract import load_generator, load_recommender
        from fashiongen.models.designer import load_designer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        self.settings: DesignConfig = from_dict(DesignConfig, design)
        recommender, generator = load_recommender(recommender_uri), load_generator(generator_uri)
        from_real_items = self.settings.mode == "from_items" or self.settings.warm_start > 0
        catalogue = load_catalogue(catalogue_uri, with_images=from_real_items)
        oracle = load_truth(catalogue_uri, catalogue) if catalogue.simulated else None
        gen_category = category_mapping(catalogue.categories, generator.categories)[catalogue.item_category]
        self.engine = PreferenceEngine(recommender, generator, self.settings, gen_category, device=device,
                                       oracle=oracle, item_images=catalogue.images if from_real_items else None,
                                       judge=load_recommender(judge_uri) if judge_uri else None,
                                       guard=load_classifier(guard_uri) if guard_uri else None,
                                       guard_class=category_mapping(generator.categories, catalogue.categories),
                                       designer=load_designer(designer_uri) if designer_uri else None,
                                       ensemble=[load_recommender(uri) for uri in ensemble_uris or ()])
        self.user_ids = catalogue.user_ids
        self.item_ids = catalogue.item_ids
        self.categories = {name: k for k, name in enumerate(generator.categories)}
        self.run_date, self.model_version, self.failures_uri = run_date, model_version, failures_uri
        self.fail_after = (faults or {}).get("design.pairs", 0)
        self.designed = 0
        self.progress = progress  # a ProgressCounter actor, or None

    def _user_index(self, user_ids: list[str]) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.user_ids, user_ids), 0, max(len(self.user_ids) - 1, 0))
        known = self.user_ids[pos] == np.asarray(user_ids, dtype=str) if len(self.user_ids) else np.zeros(0, bool)
        return np.where(known, pos, -1)

    def _record_failures(self, rows: list[tuple[str, str, str, str]]) -> None:
        if rows:
            table = pa.table([pa.array(c, pa.string()) for c in zip(*rows)], schema=FAILURES_SCHEMA)
            storage.write_table(table, storage.join(self.failures_uri, f"{uuid.uuid4().hex}.parquet"))

    def _optimise(self, pair_ids: list[str], users: np.ndarray, cats: np.ndarray, failures: list):
        """Engine results for the batch; a batch the engine rejects is retried pair by pair to isolate the bad ones."""
        from fashiongen.generation.engine import EngineError

        try:
            return [self.engine.optimise(pair_ids, users, cats, self.run_date)], [np.arange(len(pair_ids))]
        except EngineError:
            results, rows = [], []
            for k in range(len(pair_ids)):
                try:
                    results.append(self.engine.optimise(pair_ids[k:k + 1], users[k:k + 1], cats[k:k + 1], self.run_date))
                    rows.append(np.array([k]))
                except EngineError as exc:
                    failures.append((k, str(exc)))
            return results, rows

    def __call__(self, batch: pa.Table) -> pa.Table:
        pair_ids = batch.column("pair_id").to_pylist()
        user_ids = batch.column("user_id").to_pylist()
        categories = batch.column("category").to_pylist()
        users = self._user_index(user_ids)
        cats = np.array([self.categories.get(c, -1) for c in categories], dtype=np.int64)
        failures: list[tuple[int, str]] = []
        for k in np.flatnonzero(users < 0):
            failures.append((int(k), "unknown user_id (not in the catalogue the recommender was trained on)"))
        for k in np.flatnonzero((cats < 0) & (users >= 0)):
            failures.append((int(k), f"unknown category {categories[k]!r} (the generator knows {sorted(self.categories)})"))
        valid = np.flatnonzero((users >= 0) & (cats >= 0))
        tables = []
        if len(valid):
            sub_failures: list[tuple[int, str]] = []
            results, positions = self._optimise([pair_ids[k] for k in valid], users[valid], cats[valid], sub_failures)
            failures.extend((int(valid[k]), reason) for k, reason in sub_failures)
            for result, pos in zip(results, positions):
                tables.append(self._rows(result, [user_ids[k] for k in valid[pos]], [categories[k] for k in valid[pos]]))
        self._record_failures([(pair_ids[k], user_ids[k], categories[k], reason) for k, reason in failures])
        self.designed += len(valid)
        if self.fail_after and self.designed >= self.fail_after:
            raise RuntimeError(f"injected failure after {self.designed} pairs ({FAULTS_ENV} design.pairs)")
        if self.progress is not None:
            self.progress.add.remote(len(valid), len(failures))
        return pa.concat_tables(tables) if tables else _empty_raw_table()

    def _rows(self, result, user_ids: list[str], categories: list[str]) -> pa.Table:
        d, p = result.designs, result.pairs
        k = self.engine.top_k
        n_pairs = len(p["pair_id"])
        top_idx = p["dataset_top_item_idx"]
        top_ids = [[str(self.item_ids[i]) for i in row if i >= 0] for row in top_idx]
        top_scores = [[float(s) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(p["dataset_top_scores"], top_idx)]
        lift = np.repeat(p["lift"], k)
        images = d["image"]
        columns: dict[str, Any] = {
            "run_date": [self.run_date] * len(lift),
            "model_version": [self.model_version] * len(lift),
            "pair_id": [str(x) for x in d["pair_id"]],
            "user_id": np.repeat(np.asarray(user_ids, dtype=object), k).tolist(),
            "category": np.repeat(np.asarray(categories, dtype=object), k).tolist(),
            "rank": (d["rank"] + 1).astype(np.int32),
            "score": d["score"], "realism": d["realism"],
            "latent": pa.array(list(d["latent"]), pa.list_(pa.float32())),
            "image_raw": [img.tobytes() for img in images],
            "image_shape": [list(img.shape) for img in images],
            "dataset_top_item_ids": [row for row in top_ids for _ in range(k)],
            "dataset_top_scores": pa.array([row for row in top_scores for _ in range(k)], pa.list_(pa.float32())),
            "lift": lift.astype(np.float32),
        }
        if "oracle_score" in d:
            truth = p["oracle_dataset_top"]
            columns["oracle_score"] = d["oracle_score"].astype(np.float32)
            columns["dataset_oracle_scores"] = pa.array(
                [[float(t) for t, i in zip(trow, irow) if i >= 0] for trow, irow in zip(truth, top_idx) for _ in range(k)],
                pa.list_(pa.float32()))
            for name in ORACLE_DESIGN_COLUMNS:
                columns[name] = d[name].astype(np.float32)
            for name in ORACLE_PAIR_COLUMNS:
                columns[name] = np.repeat(p[name].astype(np.float32), k)
        else:
            for name in ("oracle_score", *ORACLE_DESIGN_COLUMNS, *ORACLE_PAIR_COLUMNS):
                columns[name] = pa.nulls(len(lift), pa.float32())
            columns["dataset_oracle_scores"] = pa.nulls(len(lift), pa.list_(pa.float32()))
        if "judge_score" in d:
            columns["judge_score"] = d["judge_score"].astype(np.float32)
            columns["dataset_judge_scores"] = pa.array(
                [[float(t) for t, i in zip(trow, irow) if i >= 0]
                 for trow, irow in zip(p["judge_dataset_top"], top_idx) for _ in range(k)], pa.list_(pa.float32()))
        else:
            columns["judge_score"] = pa.nulls(len(lift), pa.float32())
            columns["dataset_judge_scores"] = pa.nulls(len(lift), pa.list_(pa.float32()))
        columns["mode"] = [self.settings.mode] * len(lift)
        columns["source_item_id"] = [str(self.item_ids[i]) if i >= 0 else None for i in d["source_item_idx"]]
        assert n_pairs * k == len(lift)
        return pa.table({name: columns[name] for name in _raw_schema().names}, schema=_raw_schema())


ORACLE_DESIGN_COLUMNS = ("oracle_extrapolation", "oracle_novelty")  # per design, from the engine's designs
ORACLE_PAIR_COLUMNS = ("oracle_category_best", "oracle_diversity", "dataset_oracle_diversity")  # per pair, repeated


def _raw_schema() -> pa.Schema:
    fields = [f for f in layout.DESIGNS_SCHEMA if f.name not in ("image_png", "image_uri")]
    return pa.schema(fields + [pa.field("image_raw", pa.binary()), pa.field("image_shape", pa.list_(pa.int32()))])


def _empty_raw_table() -> pa.Table:
    return _raw_schema().empty_table()


def encode_designs(batch: pa.Table, lake_uri: str, write_objects: bool) -> pa.Table:
    """Raw uint8 images -> PNG bytes (and, when asked, PNG objects under `<lake>/images/` with hashed keys)."""
    from fashiongen.data.images import encode_png

    shapes = batch.column("image_shape").to_pylist()
    raws = batch.column("image_raw").to_pylist()
    pngs = [encode_png(np.frombuffer(raw, np.uint8).reshape(shape)) for raw, shape in zip(raws, shapes)]
    uris: list[str | None] = [None] * len(pngs)
    if write_objects:
        paths = LakePaths(lake_uri)
        run_dates, users = batch.column("run_date").to_pylist(), batch.column("user_id").to_pylist()
        cats, ranks = batch.column("category").to_pylist(), batch.column("rank").to_pylist()
        for k, png in enumerate(pngs):
            uris[k] = paths.image(run_dates[k], users[k], cats[k], ranks[k])
            storage.write_bytes(uris[k], png)
    batch = batch.drop_columns(list(RAW_COLUMNS))
    batch = batch.append_column("image_png", pa.array(pngs, pa.binary()))
    batch = batch.append_column("image_uri", pa.array(uris, pa.string()))
    return batch.select(layout.DESIGNS_SCHEMA.names).cast(layout.DESIGNS_SCHEMA)
