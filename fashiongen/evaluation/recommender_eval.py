"""Evaluate recommenders (any model in the contract) and, for simulated catalogues, the oracle ceiling beside them.

    rows = [evaluate_recommender(load_recommender(uri), catalogue) for uri in uris]
    rows.append(oracle_row(catalogue_uri, catalogue))      # None unless the catalogue is simulated
    print(markdown_table(rows)); write_results(rows, per_user, out_uri)

Each row: full AUC (ties half), sampled-100 AUC (strict), cold AUC (users whose held-out positive is cold), each with
a per-user bootstrap 95% interval, the number of users, and evaluation seconds. See fashiongen.evaluation.auc.
"""
from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pyarrow as pa

from fashiongen import storage
from fashiongen.evaluation.auc import ScoreFn, bootstrap_ci, cold_mask, held_out, per_user_auc

METRICS = ("auc_full", "auc_sampled100", "auc_cold")


def _users(num_users: int, max_users: int, seed: int) -> np.ndarray | None:
    if max_users <= 0 or max_users >= num_users:
        return None
    return np.sort(np.random.default_rng(seed).choice(num_users, size=max_users, replace=False))


def evaluate_scorer(name: str, scores: ScoreFn, catalogue, *, split: str = "test", seed: int = 0,
                    max_users: int = 0, batch_users: int = 256, bootstrap_reps: int = 1000,
                    model_version: str = "") -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(summary row, per-user arrays) for a scorer `scores(users) -> (len(users), num_items)` on `split`.
    max_users > 0 evaluates a seeded random subset of users (the same subset for every scorer under one seed)."""
    began = time.perf_counter()
    data = held_out(catalogue, split, _users(catalogue.num_users, max_users, seed))
    full, sampled = per_user_auc(scores, data, seed=seed, batch_users=batch_users)
    cold = cold_mask(data, catalogue.is_cold)
    row: dict[str, Any] = {"model": name, "model_version": model_version, "split": split, "users": len(data.users),
                           "cold_users": int(cold.sum())}
    for metric, values in (("auc_full", full), ("auc_sampled100", sampled), ("auc_cold", full[cold])):
        finite = values[np.isfinite(values)]
        row[metric] = float(finite.mean()) if len(finite) else float("nan")
        row[f"{metric}_lo"], row[f"{metric}_hi"] = bootstrap_ci(values, reps=bootstrap_reps, seed=seed)
    row["eval_seconds"] = time.perf_counter() - began
    per_user = {"user_id": catalogue.user_ids[data.users], "auc_full": full, "auc_sampled100": sampled,
                "cold_positive": cold}
    return row, per_user


def evaluate_recommender(model, catalogue, **kwargs) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """`evaluate_scorer` with the model's own `score` (named by its kind)."""
    return evaluate_scorer(model.kind, model.score, catalogue, model_version=model.model_version, **kwargs)


def oracle_row(catalogue_uri: str, catalogue, **kwargs) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """The ground-truth utility scored like a model (the AUC ceiling), or None when the catalogue is not simulated."""
    if not catalogue.simulated:
        return None
    from fashiongen.data.oracle import load_truth

    truth = load_truth(catalogue_uri, catalogue)
    return evaluate_scorer("oracle", truth.item_utility, catalogue, model_version=truth.version, **kwargs)


def auc_cell(row: dict[str, Any], metric: str) -> str:
    """"0.6123 [0.5800, 0.6400]": a metric with its 95% interval, or "n/a"."""
    value = row.get(metric, float("nan"))
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.4f} [{row[f'{metric}_lo']:.4f}, {row[f'{metric}_hi']:.4f}]"


def markdown_table(rows: list[dict[str, Any]], extra: tuple[str, ...] = ()) -> str:
    """One line per row: AUCs with 95% bootstrap intervals, users, and any `extra` columns (numbers or text)."""
    head = ["model", "AUC full [95% CI]", "AUC sampled-100 [95% CI]", "AUC cold [95% CI]", "users (cold)",
            *extra, "eval s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["model"], *(auc_cell(row, m) for m in METRICS), f"{row['users']} ({row['cold_users']})"]
        for key in extra:
            value = row.get(key, "")
            cells.append(f"{value:.2f}" if isinstance(value, float) else str(value))
        cells.append(f"{row['eval_seconds']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(rows: list[dict[str, Any]], per_user: dict[str, dict[str, np.ndarray]], out_uri: str) -> None:
    """results.parquet + results.json (one row per model) and per_user.parquet (model, user_id, per-user AUCs)."""
    storage.write_table(pa.Table.from_pylist(rows), storage.join(out_uri, "results.parquet"))
    storage.write_bytes(storage.join(out_uri, "results.json"), json.dumps(rows, indent=2).encode())
    tables = [pa.table({"model": [name] * len(arrays["user_id"]), **{k: v for k, v in arrays.items()}})
              for name, arrays in per_user.items()]
    if tables:
        storage.write_table(pa.concat_tables(tables), storage.join(out_uri, "per_user.parquet"))
