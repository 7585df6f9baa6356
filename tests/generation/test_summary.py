"""The run summary's judges: each judge's best design of a pair against its best retrieved real item."""
from __future__ import annotations

import pyarrow as pa
import pytest

from fashiongen.generation.summary import JUDGES, composition_of, judge_verdicts, pair_table, shopper_codes
from fashiongen.lake.layout import DESIGNS_SCHEMA, make_pair_id


def designs(rows: list[dict]) -> pa.Table:
    base = {"run_date": "2026-01-01", "model_version": "m", "user_id": "u", "category": "c", "realism": 0.5,
            "latent": [0.0], "image_png": b"", "dataset_top_item_ids": ["i1", "i2"], "lift": 0.0}
    return pa.Table.from_pylist([{**base, **r, "pair_id": make_pair_id("u", r["pair_id"])} for r in rows],
                                schema=DESIGNS_SCHEMA)


def test_verdicts_take_each_judges_best_design_and_best_real_item():
    table = designs([
        # pair a: rank 2 is the better design under the judges; the best real item is the max of the list
        {"pair_id": "a", "rank": 1, "score": 3.0, "dataset_top_scores": [2.0, 1.0], "oracle_score": 0.1,
         "dataset_oracle_scores": [0.3, 0.5], "judge_score": 1.0, "dataset_judge_scores": [0.0, 2.0]},
        {"pair_id": "a", "rank": 2, "score": 2.5, "dataset_top_scores": [2.0, 1.0], "oracle_score": 0.9,
         "dataset_oracle_scores": [0.3, 0.5], "judge_score": 1.5, "dataset_judge_scores": [0.0, 2.0]},
        {"pair_id": "b", "rank": 1, "score": 1.0, "dataset_top_scores": [2.0, 1.5], "oracle_score": 0.0,
         "dataset_oracle_scores": [0.2, 0.1], "judge_score": 3.0, "dataset_judge_scores": [1.0, 1.0]},
        {"pair_id": "b", "rank": 2, "score": 0.5, "dataset_top_scores": [2.0, 1.5], "oracle_score": 0.1,
         "dataset_oracle_scores": [0.2, 0.1], "judge_score": 2.0, "dataset_judge_scores": [1.0, 1.0]},
    ])
    table = table.set_column(table.schema.get_field_index("oracle_category_best"), "oracle_category_best",
                             pa.array([0.8, 0.8, 0.4, 0.4], pa.float32()))  # the truly best real item per pair
    v = judge_verdicts(table.to_batches())
    assert set(v) == set(JUDGES)
    assert pair_table(table.to_batches(max_chunksize=1)).column("user_id").to_pylist() == ["u", "u"]
    learned, truth, truly_best, held_out = (v[name] for name in JUDGES)
    assert learned["win_share"] == 0.5 and learned["mean_lift"] == pytest.approx((1.0 - 1.0) / 2)
    assert truth["win_share"] == 0.5 and truth["mean_lift"] == pytest.approx(((0.9 - 0.5) + (0.1 - 0.2)) / 2)
    assert truly_best["win_share"] == 0.5 and truly_best["mean_lift"] == pytest.approx(((0.9 - 0.8) + (0.1 - 0.4)) / 2)
    assert held_out["win_share"] == 0.5 and held_out["mean_lift"] == pytest.approx(((1.5 - 2.0) + (3.0 - 1.0)) / 2)


def test_what_a_win_is_made_of_counts_extrapolated_designs_novelty_and_diversity():
    rows = [  # pair a: one of two designs extrapolates; pair b: neither does, one is a copy of a real item
        {"pair_id": "a", "rank": 1, "oracle_extrapolation": 2.5, "oracle_novelty": 1.5},
        {"pair_id": "a", "rank": 2, "oracle_extrapolation": 0.0, "oracle_novelty": 0.5},
        {"pair_id": "b", "rank": 1, "oracle_extrapolation": 0.0, "oracle_novelty": 0.0},
        {"pair_id": "b", "rank": 2, "oracle_extrapolation": 0.0, "oracle_novelty": 0.2},
    ]
    diversity = {"a": (0.3, 0.9), "b": (0.1, 0.5)}
    table = designs([{**r, "score": 1.0, "dataset_top_scores": [0.5], "oracle_score": 0.1,
                      "dataset_oracle_scores": [0.2], "oracle_category_best": 0.3,
                      "oracle_diversity": diversity[r["pair_id"]][0],
                      "dataset_oracle_diversity": diversity[r["pair_id"]][1]} for r in rows])
    composition = composition_of(pair_table(table.to_batches(max_chunksize=3)))
    assert composition["designs outside the real 1-99% range"] == pytest.approx(0.25)  # 1 design of 4
    assert composition["novelty"] == pytest.approx((1.0 + 0.1) / 2)  # median of the pairs' mean novelty
    assert composition["diversity of the kept designs"] == pytest.approx(0.2)
    assert composition["diversity of the retrieved real items"] == pytest.approx(0.7)
    without_oracle = designs([{"pair_id": "a", "rank": 1, "score": 3.0, "dataset_top_scores": [2.0]}])
    assert composition_of(pair_table(without_oracle.to_batches())) == {}


def test_a_pair_split_across_streamed_batches_is_judged_as_one():
    rows = [{"pair_id": p, "rank": r, "score": float(r * (k + 1)), "dataset_top_scores": [2.0 + k, 1.0],
             "oracle_score": 0.1 * r, "dataset_oracle_scores": [0.3], "judge_score": -float(r),
             "dataset_judge_scores": [0.0]} for k, p in enumerate("abc") for r in (2, 1, 3)]
    table = designs(rows)
    whole = judge_verdicts(table.to_batches())
    split = judge_verdicts(table.to_batches(max_chunksize=2))  # pair b's three ranks fall in two batches
    assert split == whole and whole["learned scorer (climbed)"]["pairs"] == 3
    orphan = designs(rows + [{**rows[0], "pair_id": "d", "rank": 2}])  # no rank-1 row: no real item to compare
    assert judge_verdicts(orphan.to_batches(max_chunksize=2)) == whole


def test_a_run_without_oracle_or_judge_reports_the_learned_scorer_only():
    table = designs([{"pair_id": "a", "rank": 1, "score": 3.0, "dataset_top_scores": [2.0]}])
    assert list(judge_verdicts(table.to_batches())) == ["learned scorer (climbed)"]


def test_summary_round_trips_through_strict_json():
    import json
    import math

    from fashiongen.generation.summary import RunSummary

    summary = RunSummary(run_date="2026-01-01", action="start", run_uri="lake/designs/run_date=2026-01-01",
                         pairs_done=3, lift={"mean": 0.5}, failure_reasons={"boom": 1},
                         verdicts={"learned scorer (climbed)": {"pairs": 3.0, "win_share": 1.0,
                                                                "relative_lift": math.nan}},
                         realism={"fid_ratio": 1.2, "designs": {"fid": math.inf}})
    data = summary.to_json()
    json.loads(data, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    back = RunSummary.from_json(data)
    assert math.isnan(back.verdicts["learned scorer (climbed)"]["relative_lift"])
    assert back.verdicts["learned scorer (climbed)"]["win_share"] == 1.0
    assert (back.run_date, back.pairs_done, back.lift, back.failure_reasons) == ("2026-01-01", 3, {"mean": 0.5},
                                                                                  {"boom": 1})
    assert back.realism == {"fid_ratio": 1.2, "designs": {"fid": None}}


def test_saved_summary_keeps_the_judges_in_the_consoles_order():
    from fashiongen.generation.summary import RunSummary

    verdicts = {name: {"pairs": 1.0} for name in JUDGES}
    back = RunSummary.from_json(RunSummary(run_date="d", action="start", run_uri="u", verdicts=verdicts).to_json())
    assert list(back.verdicts) == list(JUDGES)


def test_shopper_codes_group_a_shoppers_pairs_and_keep_a_pair_without_one_apart():
    codes = shopper_codes(pa.chunked_array([["u1", None, "u2"], ["u1", None]]))  # chunks may encode apart: combined
    assert codes[0] == codes[3] and len({codes[0], codes[1], codes[2], codes[4]}) == 4
