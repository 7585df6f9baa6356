"""The amortised designer (#15) against the full latent search: pairs/s and every judge, same pairs, one run.

    python bench/designer.py --lake lake --judge lake/models/recommender/judge.pt [--epochs 20] [--count 16]

On a trained lake (the demo's): the designer (`fashiongen/models/designer.py`) is trained in process
(`training/designer_steps.py`) on every (user, category) of the users the design benches never use, i.e. all but
the first `--published` + `--count` of the stable sample order (`bench/design_recipes.py`); it is then judged on
the `--count` validation users (never trained on) and on as many of its training users, in three modes on the
same pairs: `optimise` (the default recipe: R=16, T=50, category guard), `amortised` (one forward pass) and
`amortised+refine` (`--refine-steps` engine steps from the designer's latents). Per mode: pairs/s of the engine
(one process), the mean learned score of each pair's best design, the three judges (learned, true taste, held-out
scorer; `design_recipes.judged`) and realism (in-domain FID ratio and class consistency against plain samples).
Break-even: the designer's training seconds divided by the seconds a pair saves, i.e. the pairs per night above
which training it pays for itself.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from design_recipes import RUN_DATE, judged
from fashiongen.config import DesignConfig, DesignerConfig, load_config
from fashiongen.data.contract import load_catalogue
from fashiongen.data.oracle import load_truth
from fashiongen.evaluation.realism import design_realism
from fashiongen.generation.engine import PreferenceEngine, category_mapping
from fashiongen.lake import layout
from fashiongen.models.contract import load_generator, load_recommender
from fashiongen.models.designer import AmortisedDesigner
from fashiongen.training.classifier import ensure_classifier
from fashiongen.training.designer_steps import train_designer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--judge", default="", help="held-out scorer checkpoint (default: none)")
    parser.add_argument("--published", type=int, default=24, help="users the demo publishes (never trained on)")
    parser.add_argument("--count", type=int, default=16, help="validation users judged (never trained on)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-pairs", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--refine-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    catalogue = load_catalogue(f"{args.lake}/catalogue")
    oracle = load_truth(f"{args.lake}/catalogue", catalogue) if catalogue.simulated else None
    models = f"{args.lake}/models"
    recommender, generator = load_recommender(f"{models}/recommender/dvbpr.pt"), load_generator(f"{models}/generator.pt")
    judge = load_recommender(args.judge) if args.judge else None
    lake_cfg = dataclasses.replace(cfg, lake_uri=args.lake)
    classifier = ensure_classifier(lake_cfg, catalogue)
    guard = ensure_classifier(lake_cfg, catalogue, "guard")
    gen_cat = category_mapping(catalogue.categories, generator.categories)
    order = sorted(catalogue.user_ids, key=lambda u: layout.id_key("sample", u))
    held_out = catalogue.user_index(order[args.published:args.published + args.count])
    trained_on = catalogue.user_index(order[args.published + args.count:])
    settings = DesignConfig()

    def build(mode: str, designer=None) -> PreferenceEngine:
        return PreferenceEngine(recommender, generator, dataclasses.replace(settings, mode=mode,
                                                                            refine_steps=args.refine_steps),
                                gen_cat[catalogue.item_category], oracle=oracle, item_images=None, judge=judge,
                                guard=guard, guard_class=category_mapping(generator.categories, catalogue.categories),
                                designer=designer)

    search = build("optimise")
    designer = AmortisedDesigner(recommender.user_vectors().shape[1], len(generator.categories),
                                 int(generator.latent_dim), settings.restarts)
    designer.bind(recommender, generator)
    t0 = time.perf_counter()
    history = train_designer(search, designer, trained_on,
                             DesignerConfig(epochs=args.epochs, batch_pairs=args.batch_pairs, lr=args.lr),
                             validation_users=held_out,
                             on_epoch=lambda m: print(f"epoch {m['epoch']}: objective {m['objective']:.3f} "
                                                      f"(val {m['val_objective']:.3f}), score {m['score']:.3f}, "
                                                      f"realism {m['realism']:.3f}, prior {m['prior']:.3f}, "
                                                      f"repel {m['repel']:.3f}; {m['seconds']:.0f} s", flush=True))
    train_s = time.perf_counter() - t0
    print(f"designer: {len(trained_on)} users x {len(generator.categories)} categories, {args.epochs} epochs in "
          f"{train_s:.0f} s\n")

    rows = []
    for label, users in (("never trained on", held_out), ("trained on", trained_on[:len(held_out)])):
        pairs = [(u, c) for u in users for c in range(len(catalogue.categories)) if gen_cat[c] >= 0]
        user_idx, cat_idx = np.array([u for u, _ in pairs]), np.array([gen_cat[c] for _, c in pairs])
        pair_ids = [layout.make_pair_id(str(catalogue.user_ids[u]), catalogue.categories[c]) for u, c in pairs]
        for mode in ("optimise", "amortised", "amortised+refine"):
            engine = search if mode == "optimise" else build(mode, designer)
            t0 = time.perf_counter()
            result = engine.optimise(pair_ids, user_idx, cat_idx, RUN_DATE)
            seconds = time.perf_counter() - t0
            realism = design_realism(result.designs["image"], result.designs["category_idx"], generator, classifier,
                                     catalogue.images, gen_cat[catalogue.item_category], list(generator.categories))
            rows.append((label, mode, len(pairs) / seconds, float(result.pairs["best_score"].mean()),
                         judged(result, user_idx), realism))
            print(f"{label}, {mode}: {len(pairs) / seconds:.2f} pairs/s", flush=True)

    print("\n| users | mode | pairs/s | x optimise | mean best score | % of optimise's | learned wins | true wins | "
          "held-out wins | FID ratio | class cons. |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = {label: (rate, score) for label, mode, rate, score, _, _ in rows if mode == "optimise"}
    for label, mode, rate, score, v, r in rows:
        get = lambda name: v.get(name, {}).get("win_share", float("nan"))  # noqa: E731
        print(f"| {label} | {mode} | {rate:.2f} | {rate / base[label][0]:.1f}x | {score:.3f} | "
              f"{score / base[label][1]:.1%} | {get('learned scorer (climbed)'):.1%} | "
              f"{get('true taste (simulated)'):.1%} | {get('held-out scorer'):.1%} | {r['fid_ratio']:.2f} | "
              f"{r['designs']['class_consistency']:.1%} |")
    rates = {mode: rate for label, mode, rate, *_ in rows if label == "never trained on"}
    saved = 1 / rates["optimise"] - 1 / rates["amortised+refine"]
    print(f"\nbreak-even: training {train_s:.0f} s / {saved * 1e3:.0f} ms saved per pair (amortised+refine) = "
          f"{train_s / saved:,.0f} pairs" if saved > 0 else "\nbreak-even: amortised+refine saves no time")
    print(f"final epoch: {history[-1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
