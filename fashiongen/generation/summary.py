"""What one designs run did: counts, failures by kind, and the lift distributions, read back from the lake
(five small columns, never the images, so the driver stays flat)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow.compute as pc

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.lake import reader
from fashiongen.lake.paths import LakePaths

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
    manifest: dict = field(default_factory=dict)

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
        return "\n".join(lines)


def _distribution(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    return {"mean": float(values.mean()), "p10": float(np.percentile(values, 10)),
            "median": float(np.median(values)), "p90": float(np.percentile(values, 90)),
            "share>0": float((values > 0).mean())}


def _failures(cfg: Config, run_date: str, done_pairs: set[str]) -> dict[str, str]:
    """pair_id -> reason for pairs that failed and were not designed since (a later retry may have succeeded)."""
    uri = LakePaths(cfg.lake_uri).work(run_date, FAILURES_DIR)
    if not storage.list_dir(uri):
        return {}
    table = storage.read_table(uri)
    return {p: r for p, r in zip(table.column("pair_id").to_pylist(), table.column("reason").to_pylist())
            if p not in done_pairs}


def _reason_class(reason: str) -> str:
    """A failure reason without the pair it names, so the summary can count pairs per kind of failure."""
    if reason.startswith("pair ") and ": " in reason:
        reason = reason.split(": ", 1)[1]
    return reason.split(" (")[0]


SUMMARY_COLUMNS = ["pair_id", "rank", "lift", "oracle_score", "dataset_oracle_scores"]


def summarise(summary: RunSummary, cfg: Config, run_date: str) -> RunSummary:
    run = reader.read_run(cfg.lake_uri, run_date, columns=SUMMARY_COLUMNS)  # not the images: driver memory stays flat
    best = run.filter(pc.equal(run.column("rank"), 1))
    done = set(run.column("pair_id").to_pylist())
    failed = _failures(cfg, run_date, done)
    summary.pairs_done, summary.pairs_failed = len(done), len(failed)
    reasons: dict[str, int] = {}
    for reason in failed.values():
        short = _reason_class(reason)
        reasons[short] = reasons.get(short, 0) + 1
    summary.failure_reasons = reasons
    summary.lift = _distribution(best.column("lift").to_numpy().astype(float))
    oracle = best.column("oracle_score")
    if oracle.null_count < len(oracle):
        # Oracle lift: true preference of the user's best design minus that of the best retrieved real item.
        best_design = run.group_by("pair_id").aggregate([("oracle_score", "max")])
        design_truth = dict(zip(best_design.column("pair_id").to_pylist(),
                                best_design.column("oracle_score_max").to_pylist()))
        lifts = [design_truth[p] - max(real) for p, real in zip(best.column("pair_id").to_pylist(),
                                                               best.column("dataset_oracle_scores").to_pylist()) if real]
        summary.oracle_lift = _distribution(np.asarray(lifts, dtype=float))
    summary.manifest = reader.read_manifest(cfg.lake_uri, run_date)
    return summary
