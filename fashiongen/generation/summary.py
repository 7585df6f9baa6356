"""What one designs run did: counts, failures by kind, and the lift distributions, read back from the lake
(five small columns, never the images, so the driver stays flat)."""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.evaluation.judges import compare, format_verdicts, share_interval
from fashiongen.evaluation.realism import format_realism
from fashiongen.lake import layout, reader
from fashiongen.lake.paths import LakePaths
from fashiongen.lake.table import Lake

FAILURES_DIR = "failures"


@dataclass
class RunSummary:
    """What one invocation did, printed at the end and returned to jobs/tests."""

    run_date: str
    action: str  # skip | start | resume
    run_uri: str
    pairs_total: int = 0
    pairs_done: int = 0
    pairs_failed: int = 0
    pairs_this_attempt: int = 0
    seconds: float = 0.0
    failure_reasons: dict[str, int] = field(default_factory=dict)
    plan: str = ""  # which users and why (with any duplicate rows dropped from a listed input)
    lift: dict[str, float] = field(default_factory=dict)
    oracle_lift: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, dict[str, float]] = field(default_factory=dict)  # judge -> judges.compare of its lifts
    composition: dict[str, float] = field(default_factory=dict)  # what a win is made of (composition_of)
    realism: dict = field(default_factory=dict)  # fashiongen.evaluation.realism.design_realism of a sample
    bound: dict = field(default_factory=dict)  # the design bound on the run's pairs (bound_on_pairs)
    record: dict = field(default_factory=dict)  # the run's snapshot record (reader.run_info)

    def to_json(self) -> bytes:
        """Strict JSON (non-finite numbers as null), what `save_summary` writes beside the run's report."""
        return json.dumps(_finite(dataclasses.asdict(self)), indent=2, allow_nan=False).encode()  # judges keep their order

    @classmethod
    def from_json(cls, data: bytes) -> "RunSummary":
        fields = json.loads(data)
        for name in ("lift", "oracle_lift", "composition", "bound"):
            fields[name] = _nan(fields.get(name) or {})
        fields["verdicts"] = {judge: _nan(v) for judge, v in (fields.get("verdicts") or {}).items()}
        return cls(**{f.name: fields[f.name] for f in dataclasses.fields(cls) if f.name in fields})

    @property
    def pairs_per_second(self) -> float:
        return self.pairs_this_attempt / self.seconds if self.seconds else 0.0

    def to_markdown(self) -> str:
        lines = [f"### Designs run {self.run_date} ({self.action})", "",
                 f"- output: `{self.run_uri}`",
                 *([f"- plan: {self.plan}"] if self.plan else []),
                 f"- pairs: {self.pairs_done} done, {self.pairs_failed} failed, {self.pairs_total} planned; "
                 f"{self.pairs_this_attempt} designed now in {self.seconds:.1f} s ({self.pairs_per_second:.2f} pairs/s)"]
        for reason, n in sorted(self.failure_reasons.items()):
            lines.append(f"  - failed ({n}): {reason}")
        for name, stats in (("lift, learned scorer (best design - best real item)", self.lift),
                            ("lift, oracle (true preference, simulated shoppers)", self.oracle_lift)):
            if stats:
                lines.append(f"- {name}: " + ", ".join(f"{k} {v:+.3f}" if k != "share>0" else f"{k} {v:.1%}"
                                                        for k, v in stats.items()))
        if self.verdicts:
            lines += ["", "Best design against the best real item of the category (retrieved, or truly best), per "
                      "judge:", "", format_verdicts(self.verdicts)]
        if self.bound:
            lines += ["", f"- {format_bound(self.bound)}"]
        if self.composition:
            lines += ["", f"- {format_composition(self.composition)}"]
        if self.realism:
            lines += ["", f"- {format_realism(self.realism)}"]
        return "\n".join(lines)


def composition_of(pairs: pa.Table) -> dict[str, float]:
    """What a win is made of, over a `pair_table`'s pairs (empty when the run has no oracle columns): the share of
    designs whose true attributes leave their category's real 1-99% range, the median novelty, and the mean
    diversity of the kept designs and of the retrieved real items."""
    if not pairs.num_rows or "oracle_novelty" not in pairs.column_names:
        return {}
    values = {name: pairs.column(column).to_numpy(zero_copy_only=False).astype(float)
              for column, name in COMPOSITION.items()}
    if np.isnan(values["novelty"]).all():
        return {}
    with np.errstate(invalid="ignore"):
        return {name: float(np.nanmedian(v) if name == "novelty" else np.nanmean(v)) for name, v in values.items()}


def format_composition(composition: dict[str, float]) -> str:
    """One line: what the designs' wins are made of, in the oracle's attribute space."""
    c = composition
    return (f"what a win is made of (true attributes): {c['designs outside the real 1-99% range']:.1%} of designs "
            f"leave their category's real 1-99% range; novelty median {c['novelty']:.2f} (0 = a copy of a real item, "
            f"1 = the real-to-real spacing); diversity of the kept designs {c['diversity of the kept designs']:.2f} "
            f"vs {c['diversity of the retrieved real items']:.2f} of the retrieved real items (attribute RMS)")


def _finite(value):
    """`value` with every non-finite float replaced by None (strict JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _nan(stats: dict) -> dict:
    return {k: math.nan if v is None else v for k, v in stats.items()}


def save_summary(cfg: Config, summary: RunSummary) -> str:
    """Write the run's summary where the report and the next `skip` read it; returns its URI."""
    uri = LakePaths.of(cfg).run_summary(summary.run_date)
    storage.write_bytes(uri, summary.to_json())
    return uri


def load_summary(cfg: Config, run_date: str) -> RunSummary | None:
    """The saved summary of a published run, or None when it has none (written before summaries were kept)."""
    uri = LakePaths.of(cfg).run_summary(run_date)
    return RunSummary.from_json(storage.read_bytes(uri)) if storage.exists(uri) else None


def _distribution(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    return {"mean": float(values.mean()), "p10": float(np.percentile(values, 10)),
            "median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
            "share>0": float((values > 0).mean())}


def _failures(cfg: Config, run_date: str, done_pairs: pa.Array) -> dict[str, str]:
    """pair_id -> reason for pairs that failed and were not designed since (a later retry may have succeeded)."""
    uri = LakePaths(cfg.lake_uri).work(run_date, FAILURES_DIR)
    if not storage.list_dir(uri):
        return {}
    table = storage.read_table(uri)
    table = table.filter(pc.invert(pc.is_in(table.column("pair_id"), value_set=done_pairs)))
    return dict(zip(table.column("pair_id").to_pylist(), table.column("reason").to_pylist()))


def _reason_class(reason: str) -> str:
    """A failure reason without the pair it names, so the summary can count pairs per kind of failure."""
    if reason.startswith("pair ") and ": " in reason:
        reason = reason.split(": ", 1)[1]
    return reason.split(" (")[0]


TRUE_TASTE, TRULY_BEST = "true taste (simulated shoppers)", "true taste vs the truly best real item"
JUDGES = {  # judge -> (the designs' column, the real items' column: the retrieved ones, or the truly best one)
    "learned scorer (climbed)": ("score", "dataset_top_scores"),
    TRUE_TASTE: ("oracle_score", "dataset_oracle_scores"),
    TRULY_BEST: ("oracle_score", "oracle_category_best"),
    "held-out scorer": ("judge_score", "dataset_judge_scores"),
}
COMPOSITION = {  # what a win is made of: per-design columns (averaged over a pair's designs) -> summary name
    "oracle_extrapolation": "designs outside the real 1-99% range",
    "oracle_novelty": "novelty",
    "oracle_diversity": "diversity of the kept designs",
    "dataset_oracle_diversity": "diversity of the retrieved real items",
}
SUMMARY_COLUMNS = ["pair_id", "user_id", "category", "rank", "lift", *dict.fromkeys(c for cols in JUDGES.values() for c in cols),
                   *COMPOSITION]


def _list_max(column: pa.ChunkedArray) -> np.ndarray:
    """Row-wise max of a list<float> column (NaN for null or empty lists)."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    out = np.full(len(column), np.nan)
    flat = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(float)
    if len(flat):
        parents = pc.list_parent_indices(column).to_numpy()
        np.fmax.at(out, parents, flat)
    return out


def _floats(column: pa.Array) -> np.ndarray:
    return column.cast(pa.float64()).to_numpy(zero_copy_only=False)  # nulls become NaN


def _real_best(column: pa.Array) -> np.ndarray:
    """The best real item's score per row: the max of a list column, or a float column as it is."""
    return _list_max(column) if pa.types.is_list(column.type) else _floats(column)


def _composition(batch: pa.RecordBatch) -> np.ndarray:
    """(rows, len(COMPOSITION)) per design: extrapolated (1/0), novelty, and the pair's two diversities (NaN if null)."""
    values = np.column_stack([_floats(batch.column(name)) for name in COMPOSITION])
    extrapolation = values[:, 0]
    values[:, 0] = np.where(np.isnan(extrapolation), np.nan, extrapolation > 0)
    return values


def pair_table(batches: Iterable[pa.RecordBatch]) -> pa.Table:
    """One row per designed pair, from streamed batches of SUMMARY_COLUMNS: pair_id, user_id, category, the rank-1 design's
    lift, per judge `<design column>_max` (its best design) / `<real column>_max` (its best real item, NaN where a
    pair lacks a rank-1 row), and each COMPOSITION column averaged over the pair's designs (NaN where absent). Only
    compact per-row arrays are held: 16-byte pair keys and floats."""
    keys, designs, composition, first_keys, first_cats, first_users, first_values = [], [], [], [], [], [], []
    for batch in batches:
        key = layout.pair_id_bytes(batch.column("pair_id"), "the run")
        keys.append(key)
        designs.append(np.column_stack([_floats(batch.column(d)) for d, _ in JUDGES.values()]))
        composition.append(_composition(batch))
        first = pc.equal(batch.column("rank"), 1).to_numpy(zero_copy_only=False)
        first_keys.append(key[first])
        first_cats.append(batch.column("category").filter(pa.array(first)))
        first_users.append(batch.column("user_id").filter(pa.array(first)))
        first_values.append(np.column_stack([_floats(batch.column("lift")).reshape(-1, 1)[first],
                                             *[_real_best(batch.column(real))[first] for _, real in JUDGES.values()]]))
    if not keys:
        return pa.table({"pair_id": pa.array([], pa.string())})
    key = np.concatenate(keys).view("V16").ravel()
    order = np.argsort(key, kind="stable")
    key = key[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    pairs = key[starts]
    best = np.fmax.reduceat(np.concatenate(designs)[order], starts, axis=0)  # NaN only where every row is NaN
    parts = np.concatenate(composition)[order]
    present = np.add.reduceat(np.isfinite(parts), starts, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_parts = np.add.reduceat(np.nan_to_num(parts), starts, axis=0) / present  # NaN where none is present
    del keys, designs, composition, parts, order, key
    at = np.searchsorted(pairs, np.concatenate(first_keys).view("V16").ravel())
    row = np.full(len(pairs), -1)
    row[at] = np.arange(len(at))
    values = np.full((len(pairs), 1 + len(JUDGES)), np.nan)
    values[at] = np.concatenate(first_values)
    take = pa.array(row, mask=row < 0)
    category = pa.concat_arrays([c.cast(pa.string()) for c in first_cats]).take(take)
    user = pa.concat_arrays([u.cast(pa.string()) for u in first_users]).take(take)
    columns = {"pair_id": layout.pair_ids_of_bytes(pairs.view(np.uint8).reshape(-1, 16)), "user_id": user,
               "category": category, "lift": values[:, 0]}
    for k, (design, real) in enumerate(JUDGES.values()):
        columns[f"{design}_max"] = best[:, k]
        columns[f"{real}_max"] = values[:, 1 + k]
    for k, name in enumerate(COMPOSITION):
        columns[name] = mean_parts[:, k]
    return pa.table(columns)


def pair_lifts(pairs: pa.Table) -> dict[str, pa.Table]:
    """Per judge present in a `pair_table`: one row per pair (pair_id, user_id, category, design, real, lift): the judge's
    score of its best design of the pair and of its best retrieved real item, and their difference (NaN where one is
    missing)."""
    out = {}
    for name, (design_col, real_col) in JUDGES.items():
        if not pairs.num_rows or np.isnan(pairs.column(f"{design_col}_max").to_numpy()).all():
            continue
        design = pairs.column(f"{design_col}_max").to_numpy(zero_copy_only=False).astype(float)
        real = pairs.column(f"{real_col}_max").to_numpy(zero_copy_only=False).astype(float)
        out[name] = pa.table({"pair_id": pairs.column("pair_id"), "user_id": pairs.column("user_id"),
                              "category": pairs.column("category"),
                              "design": design, "real": real, "lift": design - real})
    return out


def verdicts_of(lifts: dict[str, pa.Table]) -> dict[str, dict[str, float]]:
    """Per judge of `pair_lifts`: its best design of each pair against its best retrieved real item, the win
    share's interval resampling shoppers."""
    if not lifts:
        return {}
    shoppers = shopper_codes(next(iter(lifts.values())).column("user_id"))  # every judge's table has the same pairs
    return {name: compare(t.column("design").to_numpy(), t.column("real").to_numpy(), groups=shoppers)
            for name, t in lifts.items()}


def shopper_codes(users: pa.ChunkedArray) -> np.ndarray:
    """One integer per pair naming its shopper; a pair without one (no rank-1 row) is a shopper of its own."""
    encoded = pc.dictionary_encode(users.combine_chunks())
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.float64)  # NaN where the user is missing
    missing = np.isnan(codes)
    codes[missing] = len(encoded.dictionary) + np.arange(missing.sum())
    return codes.astype(np.int64)


def judge_verdicts(batches: Iterable[pa.RecordBatch]) -> dict[str, dict[str, float]]:
    """Per judge present in a run's streamed SUMMARY_COLUMNS: its best design of each pair against its best
    retrieved real item."""
    return verdicts_of(pair_lifts(pair_table(batches)))


def summarise(summary: RunSummary, cfg: Config, run_date: str) -> RunSummary:
    # Streamed, never the images and no per-row Python objects: the driver holds compact arrays per pair.
    pairs = pair_table(reader.scan_run(Lake.of(cfg), run_date, columns=SUMMARY_COLUMNS))
    failed = _failures(cfg, run_date, pairs.column("pair_id"))
    summary.pairs_done, summary.pairs_failed = pairs.num_rows, len(failed)
    summary.pairs_total = summary.pairs_total or summary.pairs_done + summary.pairs_failed  # a skip plans nothing
    reasons: dict[str, int] = {}
    for reason in failed.values():
        short = _reason_class(reason)
        reasons[short] = reasons.get(short, 0) + 1
    summary.failure_reasons = reasons
    if pairs.num_rows:
        summary.lift = _distribution(pairs.column("lift").to_numpy(zero_copy_only=False).astype(float))
    lifts = pair_lifts(pairs)
    truth = lifts.get(TRUE_TASTE)
    if truth is not None:  # true preference of the user's best design minus that of the best retrieved real item
        summary.oracle_lift = _distribution(truth.column("lift").to_numpy())
    summary.verdicts = verdicts_of(lifts)
    summary.bound = bound_on_pairs(cfg.data.catalogue_uri, pairs, lifts)
    summary.composition = composition_of(pairs)
    designed = pairs.num_rows
    del pairs, lifts, truth
    pa.default_memory_pool().release_unused()  # the pair table's memory goes back before realism loads its models
    if cfg.generation.realism_sample and designed:
        summary.realism = run_realism(cfg, run_date)
    summary.record = reader.run_info(Lake.of(cfg), run_date)
    return summary


def bound_on_pairs(catalogue_uri: str, pairs: pa.Table, lifts: dict[str, pa.Table]) -> dict[str, float]:
    """The design bound (evaluation.design_bound: a perfect Φ and a perfect generator, the best estimator) on the
    pairs a run's true taste judged, beside that run's own win shares and their ratio; {} without a true taste or
    without the catalogue's truth."""
    from fashiongen.data.contract import load_catalogue
    from fashiongen.data.oracle import load_truth, truth_exists
    from fashiongen.evaluation.design_bound import ESTIMATORS, design_bound

    if TRUE_TASTE not in lifts or TRULY_BEST not in lifts or not truth_exists(catalogue_uri):
        return {}  # no truth to bound with (a catalogue moved since the run: its verdicts stand on their own)
    retrieved_lift = lifts[TRUE_TASTE].column("lift").to_numpy()
    best_lift = lifts[TRULY_BEST].column("lift").to_numpy()
    catalogue = load_catalogue(catalogue_uri, with_images=False)
    user_idx, category_idx = (pc.index_in(pairs.column(name), value_set=pa.array(values)).to_numpy(
        zero_copy_only=False) for name, values in (("user_id", catalogue.user_ids.astype(str)),
                                                   ("category", catalogue.categories)))  # NaN: not in the catalogue
    keep = np.isfinite(retrieved_lift) & np.isfinite(best_lift) & np.isfinite(user_idx) & np.isfinite(category_idx)
    if not keep.any():
        return {}
    truth = load_truth(catalogue_uri, catalogue)
    user_idx, category_idx = user_idx[keep].astype(np.int64), category_idx[keep].astype(np.int64)
    verdicts = {name: design_bound(truth, catalogue, user_idx, category_idx, estimate(truth, catalogue, user_idx,
                                                                                      category_idx))
                for name, estimate in ESTIMATORS.items()}
    on_retrieved = max(verdicts, key=lambda name: verdicts[name]["beats_retrieved"].mean())
    on_best = max(verdicts, key=lambda name: verdicts[name]["beats_best"].mean())
    estimator = on_retrieved if on_retrieved == on_best else f"{on_retrieved} / {on_best}"
    bound_retrieved = float(verdicts[on_retrieved]["beats_retrieved"].mean())
    bound_best = float(verdicts[on_best]["beats_best"].mean())
    run_retrieved, run_best = float((retrieved_lift[keep] > 0).mean()), float((best_lift[keep] > 0).mean())
    low, high = share_interval(retrieved_lift[keep] > 0, user_idx, verdicts[on_retrieved]["beats_retrieved"])
    return {"pairs": float(keep.sum()), "estimator": estimator, "shoppers": float(len(np.unique(user_idx))),
            "bound vs best retrieved": bound_retrieved, "bound vs truly best": bound_best,
            "run vs best retrieved": run_retrieved, "run vs truly best": run_best,
            "share of the bound": run_retrieved / bound_retrieved if bound_retrieved else math.nan,
            "share of the bound, low": low, "share of the bound, high": high,
            "share of the bound, truly best": run_best / bound_best if bound_best else math.nan}


def format_bound(bound: dict) -> str:
    """One line: the run's true-taste wins against what a perfect Φ and a perfect generator reach on its pairs."""
    b = bound
    low, high = b.get("share of the bound, low", math.nan), b.get("share of the bound, high", math.nan)
    interval = f" [{low:.2f}, {high:.2f}]" if math.isfinite(low) and math.isfinite(high) else ""
    shoppers = f" of {b['shoppers']:.0f} shoppers" if "shoppers" in b else ""
    return (f"design bound on these {b['pairs']:.0f} pairs{shoppers} (a perfect Φ and a perfect generator, "
            f"{b['estimator']} estimate of the shopper's ideal): {b['bound vs best retrieved']:.1%} beat the best "
            f"retrieved real item, {b['bound vs truly best']:.1%} the truly best; this run "
            f"{b['run vs best retrieved']:.1%} and {b['run vs truly best']:.1%}, {b['share of the bound']:.2f}{interval} "
            f"and {b['share of the bound, truly best']:.2f} of the bound")


def run_realism(cfg: Config, run_date: str) -> dict:
    """Realism of up to generation.realism_sample best designs (rank 1, only those read: the driver stays flat) against plain
    samples of the same categories, in the catalogue classifier's feature space (`fashiongen train-classifiers`)."""
    from fashiongen.data.contract import load_catalogue
    from fashiongen.data.images import decode_image
    from fashiongen.evaluation.realism import design_realism
    from fashiongen.generation.engine import category_mapping
    from fashiongen.models.contract import load_generator
    from fashiongen.models.classifier import load_catalogue_classifier, trained_on

    paths = LakePaths.of(cfg)
    sample = reader.best_designs_sample(Lake.of(cfg), run_date, ["category", "image_png"], cfg.generation.realism_sample)
    images = [decode_image(png) for png in sample.column("image_png").to_pylist()]
    categories = sample.column("category").to_pylist()
    catalogue = load_catalogue(cfg.data.catalogue_uri)
    generator = load_generator(paths.design_models(cfg.recommender.model)[1])
    to_generator = category_mapping(catalogue.categories, generator.categories)
    where = {name: k for k, name in enumerate(generator.categories)}
    judge = load_catalogue_classifier(paths.classifier_model("judge"), trained_on(catalogue.meta), "judge")
    return design_realism(np.stack(images), np.array([where[c] for c in categories]), generator,
                          judge, catalogue.images, to_generator[catalogue.item_category],
                          list(generator.categories), truncation=cfg.gan.truncation)
