"""`fashiongen evaluate`: full, sampled-100 and cold AUC of recommender checkpoints (with the oracle ceiling on
simulated catalogues), written to the lake and printed as a markdown table."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", default=None, metavar="URI",
                        help="recommender checkpoint (repeatable; default: every .pt under <lake>/models/recommender/)")
    parser.add_argument("--catalogue", default=None, help="catalogue URI (default: data.catalogue_uri)")
    parser.add_argument("--split", choices=("test", "validation"), default="test")
    parser.add_argument("--max-users", type=int, default=0, help="evaluate a seeded random subset of users (0 = all)")
    parser.add_argument("--out", default=None, help="output folder (default: <lake>/evaluation/recommender/<split>)")


TASTE_USERS = 200  # users sampled (seeded) for the taste-fidelity columns
TASTE_COLUMNS = ("taste_within", "taste_overall")


def run(cfg: Config, args: argparse.Namespace) -> int:
    import numpy as np

    from fashiongen import storage
    from fashiongen.lake.paths import LakePaths
    from fashiongen.data.contract import load_catalogue, read_meta
    from fashiongen.evaluation.recommender_eval import (evaluate_recommender, markdown_table, oracle_row,
                                                        write_results)
    from fashiongen.data.oracle import load_truth
    from fashiongen.errors import FashiongenError
    from fashiongen.evaluation.taste import taste_fidelity, visual_scores
    from fashiongen.models.contract import load_recommender

    catalogue_uri = args.catalogue or cfg.data.catalogue_uri
    read_meta(catalogue_uri)  # no catalogue: `fashiongen prepare` comes before any model
    paths = LakePaths.of(cfg)
    models_dir = paths.recommender_models()
    uris = args.model or [storage.join(models_dir, name) for name in storage.list_dir(models_dir) if name.endswith(".pt")]
    if not uris:
        raise FashiongenError(f"no recommender checkpoints under {models_dir}: run `fashiongen train-recommender` "
                              "first or pass --model URI")
    catalogue = load_catalogue(catalogue_uri, with_images=False)
    options = {"split": args.split, "seed": cfg.recommender.seed, "max_users": args.max_users}
    truth = load_truth(catalogue_uri, catalogue) if catalogue.simulated else None
    fidelity_users = np.sort(np.random.default_rng(cfg.recommender.seed).choice(
        catalogue.num_users, size=min(TASTE_USERS, catalogue.num_users), replace=False))
    rows, per_user = [], {}
    for uri in uris:
        model = load_recommender(uri)
        row, users = evaluate_recommender(model, catalogue, **options)
        row["model"] = uri.rstrip("/").split("/")[-1].removesuffix(".pt")  # the file name tells models apart
        row["model_uri"] = uri
        if truth is not None:
            row.update(taste_fidelity(visual_scores(model, catalogue.item_category), truth, catalogue.item_category,
                                      fidelity_users))
        rows.append(row)
        per_user[row["model"]] = users
    oracle = oracle_row(catalogue_uri, catalogue, **options)
    if oracle is not None:
        row = {**oracle[0], "model_uri": ""}
        row.update(taste_fidelity(truth.taste_logit, truth, catalogue.item_category, fidelity_users))
        rows.append(row)
        per_user["oracle"] = oracle[1]
    out = args.out or paths.evaluation(args.split)
    write_results(rows, per_user, out)
    print(markdown_table(rows, extra=TASTE_COLUMNS if truth is not None else ()))
    print(f"\nwritten to {out} (results.parquet, results.json, per_user.parquet)")
    return 0
