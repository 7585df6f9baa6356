"""Choose the recommender recipe on the validation split: DVBPR trained in-process with each lever, one at a time.

    python bench/recommender_recipes.py --items 10000 --users 2000 --epochs 3 \
        --recipe paper=recommender.preset=paper --recipe default= \
        --recipe samecat=recommender.negatives_same_category=0.5
    python bench/recommender_recipes.py --epochs 8 --per-epoch --recipe default=   # the epochs curve

Each recipe is a name and comma-separated config overrides on top of the base (the demo's catalogue size and
lr). Every recipe trains from the same seed on the same catalogue; the table reports *validation* full AUC with
95% intervals (the split recipes are chosen on), taste fidelity on 200 users and seconds per epoch, beside
CategoryPop's validation AUC (the bar). Never tune on the test split: report it with bench/recommender.py.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe", action="append", default=[], metavar="NAME=K=V,K=V",
                        help="a recipe: a name, '=', then comma-separated overrides (repeatable)")
    parser.add_argument("--per-epoch", action="store_true",
                        help="also print DVBPR's validation full AUC after every epoch (re-indexes the catalogue)")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()

    import numpy as np
    import torch

    from fashiongen.config import load_config
    from fashiongen.data.contract import load_catalogue
    from fashiongen.data.oracle import load_truth
    from fashiongen.data.prepare import prepare_catalogue
    from fashiongen.evaluation.recommender_eval import evaluate_scorer, markdown_table
    from fashiongen.evaluation.taste import taste_fidelity, visual_scores
    from fashiongen.models.contract import recommender_class

    torch.set_num_threads(args.threads)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-recipes-")
    base = [f"data.catalogue_uri={workdir}/catalogue", f"data.max_items={args.items}",
            f"simulation.num_users={args.users}", f"recommender.epochs={args.epochs}", f"recommender.lr={args.lr}"]
    prepare_catalogue(load_config(None, base))
    catalogue = load_catalogue(f"{workdir}/catalogue")
    truth = load_truth(f"{workdir}/catalogue", catalogue)
    users = np.sort(np.random.default_rng(0).choice(catalogue.num_users, size=min(200, catalogue.num_users),
                                                    replace=False))
    rows = []

    def judge(name: str, model, seconds: str) -> None:
        row, _ = evaluate_scorer(name, model.score, catalogue, split="validation", bootstrap_reps=500)
        row.update(taste_fidelity(visual_scores(model, catalogue.item_category), truth, catalogue.item_category, users))
        row["s/epoch"] = seconds
        rows.append(row)
        print(f"  {name}: validation AUC {row['auc_full']:.4f}, taste within {row['taste_within']:.3f} "
              f"({seconds} s/epoch)", flush=True)

    bar = recommender_class("categorypop").from_config(load_config(None, base).recommender)
    bar.fit(catalogue)
    judge("categorypop", bar, "-")
    for recipe in args.recipe or ["paper=recommender.preset=paper", "default="]:
        name, _, overrides = recipe.partition("=")
        cfg = load_config(None, base + [o for o in overrides.split(",") if o])
        model = recommender_class("dvbpr").from_config(cfg.recommender)

        def curve(metrics: dict, model=model, name=name) -> None:
            model.index_catalogue(catalogue.images)
            auc = evaluate_scorer(name, model.score, catalogue, split="validation", bootstrap_reps=10)[0]["auc_full"]
            print(f"    {name} epoch {metrics['epoch'] + 1}: validation AUC {auc:.4f}", flush=True)

        began = time.perf_counter()
        history = model.fit(catalogue, curve if args.per_epoch else None)
        judge(name, model, f"{(time.perf_counter() - began) / max(len(history), 1):.0f}")
    print()
    print(markdown_table(rows, extra=("taste_within", "taste_overall", "s/epoch")))


if __name__ == "__main__":
    main()
