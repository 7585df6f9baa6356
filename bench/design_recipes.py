"""Design recipes under three judges and realism, on a trained lake: choose on validation users, report the demo's.

    python bench/design_recipes.py --lake lake --judge lake/models/recommender/judge.pt \
        --users validation --recipes official,default,"steps=50 lr=0.05"

Users: the demo publishes the first `generation.max_users` users of the stable sample order (`plan.select_users`;
`--published`, default 24: the 240 pairs of the 10k-item / 2,000-shopper demo lake the design issue measured);
`--users validation` takes the next `--count` users of that order (never published: choose recipes here),
`--users demo` the published ones (report these). Pairs are every (user, category).

Recipes: `official` (design.preset=official), `default` (DesignConfig()), or space-separated design.* overrides on
top of the default; `members=N` in a recipe climbs a scorer ensemble of the recommender and the first N checkpoints of
`--ensemble` (visual recommenders trained apart with other seeds; `design.ensemble_spread` is its κ). For each: pairs/s of the engine (one process, torch threads as given), the three judges
(`fashiongen.evaluation.judges.compare`: the learned scorer it climbed, the simulated shoppers' true taste, the
held-out scorer) and realism (`fashiongen.evaluation.realism`: designs vs plain samples, in-domain FID and class
consistency against the catalogue's real images; `training.classifier.ensure_classifier` trains the judge and the
guard classifiers once and keeps them beside the models).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import time

import numpy as np
import torch

from fashiongen.config import PRESETS, DesignConfig, from_dict, load_config, parse_override
from fashiongen.data.contract import load_catalogue
from fashiongen.data.oracle import load_truth
from fashiongen.evaluation import judges
from fashiongen.evaluation.judges import format_verdicts
from fashiongen.evaluation.realism import design_realism
from fashiongen.generation.engine import PreferenceEngine, category_mapping
from fashiongen.lake import layout
from fashiongen.models.contract import load_generator, load_recommender
from fashiongen.training.classifier import ensure_classifier

RUN_DATE = "2026-01-01"


def recipe(text: str) -> tuple[DesignConfig, int]:
    """The recipe's design settings and its number of ensemble members."""
    if text == "official":
        return from_dict(DesignConfig, PRESETS["design"]["official"]), 0
    values: dict = {}
    members = 0
    for item in text.split() if text != "default" else []:
        if item.startswith("members="):
            members = int(item.split("=", 1)[1])
        else:
            values.update(parse_override(item))
    return from_dict(DesignConfig, values), members


def judged(result, shoppers: np.ndarray) -> dict[str, dict[str, float]]:
    """Each judge's verdict on the result's pairs, the win share's interval resampling `shoppers` (one per pair)."""
    d, p = result.designs, result.pairs
    n, k = len(p["pair_id"]), len(d["score"]) // max(len(p["pair_id"]), 1)
    compare = functools.partial(judges.compare, groups=shoppers)
    verdicts = {"learned scorer (climbed)": compare(p["best_score"], p["dataset_top_scores"][:, 0])}
    if "oracle_score" in d:
        verdicts["true taste (simulated)"] = compare(d["oracle_score"].reshape(n, k).max(1),
                                                     np.nanmax(p["oracle_dataset_top"], axis=1))
        verdicts["true taste vs the truly best real item"] = compare(d["oracle_score"].reshape(n, k).max(1),
                                                                     p["oracle_category_best"])
    if "judge_score" in d:
        verdicts["held-out scorer"] = compare(d["judge_score"].reshape(n, k).max(1),
                                              np.nanmax(p["judge_dataset_top"], axis=1))
    return verdicts


def pair_bound(catalogue_uri: str, catalogue, user_idx: np.ndarray, category_idx: np.ndarray) -> float:
    """The design bound's share against the best retrieved item on these pairs (evaluation.design_bound)."""
    from fashiongen.evaluation.design_bound import ESTIMATORS, design_bound

    truth = load_truth(catalogue_uri, catalogue)
    return max(float(design_bound(truth, catalogue, user_idx, category_idx,
                                  estimate(truth, catalogue, user_idx, category_idx))["beats_retrieved"].mean())
               for estimate in ESTIMATORS.values())


def save_lifts(path: str, pair_ids: list[str], result) -> None:
    """Per pair: the best kept design minus the best retrieved item under each judge (NaN where a judge is absent)."""
    import os

    d, p = result.designs, result.pairs
    n = len(pair_ids)
    k = len(d["score"]) // max(n, 1)
    best = lambda column: d[column].reshape(n, k).max(1) if column in d else np.full(n, np.nan)  # noqa: E731
    top = lambda column: np.nanmax(p[column], axis=1) if column in p else np.full(n, np.nan)  # noqa: E731
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    np.savez(path, pair_id=np.array(pair_ids), learned=p["lift"], true=best("oracle_score") - top("oracle_dataset_top"),
             truly_best=best("oracle_score") - p.get("oracle_category_best", np.full(n, np.nan)),
             held_out=best("judge_score") - top("judge_dataset_top"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--judge", default="", help="held-out scorer checkpoint (default: none)")
    parser.add_argument("--users", choices=("validation", "demo"), default="validation")
    parser.add_argument("--count", type=int, default=16, help="validation users")
    parser.add_argument("--published", type=int, default=24,
                        help="users the demo published on this lake (generation.max_users when it ran; 24 = the "
                             "240 pairs the design issue reports)")
    parser.add_argument("--ensemble", default="", help="','-separated checkpoints of scorers trained apart (recipes "
                        "with members=N climb the first N beside the recommender)")
    parser.add_argument("--recipes", default="official;default", help="';'-separated recipes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="", help="folder for each recipe's per-pair judge lifts (<recipe>.npz), "
                        "to compare recipes pair by pair")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    models = f"{args.lake}/models"
    catalogue = load_catalogue(f"{args.lake}/catalogue")
    oracle = load_truth(f"{args.lake}/catalogue", catalogue) if catalogue.simulated else None
    recommender, generator = load_recommender(f"{models}/recommender/dvbpr.pt"), load_generator(f"{models}/generator.pt")
    judge = load_recommender(args.judge) if args.judge else None
    ensemble = [load_recommender(uri) for uri in args.ensemble.split(",") if uri]
    lake_cfg = dataclasses.replace(cfg, lake_uri=args.lake)
    classifier = ensure_classifier(lake_cfg, catalogue)
    guard = ensure_classifier(lake_cfg, catalogue, "guard")
    order = sorted(catalogue.user_ids, key=lambda u: layout.id_key("sample", u))
    cap = args.published
    chosen = order[:cap] if args.users == "demo" else order[cap:cap + args.count]
    users = catalogue.user_index(chosen)
    gen_cat = category_mapping(catalogue.categories, generator.categories)
    pairs = [(u, c) for u in users for c in range(len(catalogue.categories)) if gen_cat[c] >= 0]
    user_idx = np.array([u for u, _ in pairs]); cat_idx = np.array([gen_cat[c] for _, c in pairs])
    pair_ids = [layout.make_pair_id(str(catalogue.user_ids[u]), catalogue.categories[c]) for u, c in pairs]
    print(f"{len(pairs)} pairs: {args.users} users ({len(users)}); torch threads {args.threads}")
    bound = pair_bound(f"{args.lake}/catalogue", catalogue, user_idx, np.array([c for _, c in pairs])) if oracle else None
    if bound is not None:
        print(f"design bound on these pairs (a perfect Φ and generator, the best estimator): {bound:.1%} beat the "
              "best retrieved real item under the true taste")
    print()
    rows = []
    for text in args.recipes.split(";"):
        settings, members = recipe(text.strip())
        if members > len(ensemble):
            raise SystemExit(f"recipe {text!r} asks for {members} ensemble members; --ensemble names {len(ensemble)}")
        engine = PreferenceEngine(recommender, generator, settings, gen_cat[catalogue.item_category], oracle=oracle,
                                  item_images=catalogue.images, judge=judge, guard=guard,
                                  guard_class=category_mapping(generator.categories, catalogue.categories),
                                  ensemble=ensemble[:members])
        t0 = time.perf_counter()
        result = engine.optimise(pair_ids, user_idx, cat_idx, RUN_DATE)
        seconds = time.perf_counter() - t0
        verdicts = judged(result, user_idx)
        realism = design_realism(result.designs["image"], result.designs["category_idx"], generator, classifier,
                                 catalogue.images, gen_cat[catalogue.item_category], list(generator.categories))
        d = realism["designs"]
        print(f"## recipe: {text}  ({len(pairs) / seconds:.2f} pairs/s, {seconds:.0f} s; mean D {result.designs['realism'].mean():.2f})")
        print(format_verdicts(verdicts))
        print(f"realism: FID {d['fid']:.2f} vs plain {realism['plain']['fid']:.2f} (ratio {realism['fid_ratio']:.2f}); "
              f"class consistency {d['class_consistency']:.1%} vs plain {realism['plain']['class_consistency']:.1%}\n",
              flush=True)
        made_of = {}
        if "oracle_novelty" in result.designs:
            made_of = {"extrapolated": float((result.designs["oracle_extrapolation"] > 0).mean()),
                       "diversity": float(np.nanmean(result.pairs["oracle_diversity"])),
                       "real diversity": float(np.nanmean(result.pairs["dataset_oracle_diversity"]))}
            print(f"made of: {made_of['extrapolated']:.1%} extrapolated; diversity of the kept designs "
                  f"{made_of['diversity']:.2f} vs {made_of['real diversity']:.2f} of the retrieved real items\n")
        rows.append((text, len(pairs) / seconds, verdicts, realism, made_of))
        if args.out:
            save_lifts(f"{args.out}/{text.replace(' ', '_').replace('=', '-')}.npz", pair_ids, result)
    print("| recipe | pairs/s | learned wins | learned lift/best | true wins | true p | share of the bound | true vs truly "
          "best | held-out wins | FID ratio | class cons. | extrapolated | diversity (real) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for text, rate, v, r, m in rows:
        get = lambda name, key: v.get(name, {}).get(key, float("nan"))  # noqa: E731
        print(f"| {text} | {rate:.2f} | {get('learned scorer (climbed)', 'win_share'):.1%} | "
              f"{get('learned scorer (climbed)', 'relative_lift'):+.1%} | {get('true taste (simulated)', 'win_share'):.1%} | "
              f"{get('true taste (simulated)', 'p_sign'):.2g} | "
              f"{get('true taste (simulated)', 'win_share') / bound if bound else float('nan'):.2f} | "
              f"{get('true taste vs the truly best real item', 'win_share'):.1%} | "
              f"{get('held-out scorer', 'win_share'):.1%} | {r['fid_ratio']:.2f} | {r['designs']['class_consistency']:.1%} | "
              f"{m.get('extrapolated', float('nan')):.1%} | {m.get('diversity', float('nan')):.2f} "
              f"({m.get('real diversity', float('nan')):.2f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
