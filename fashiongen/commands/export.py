"""`fashiongen export`: a recommender's user vectors θ, item features Φ and per-user top-k real items per category,
as Parquet (see fashiongen.models.export)."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None,
                        help="recommender checkpoint (default: <lake>/models/recommender/<recommender.model>.pt)")
    parser.add_argument("--catalogue", default=None, help="catalogue URI (default: data.catalogue_uri)")
    parser.add_argument("--out", default=None, help="output folder (default: <lake>/export/recommender/<model_version>)")
    parser.add_argument("--exclude-train", action="store_true",
                        help="leave each user's training items out of their top-k (default: rank every real item)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.data.contract import load_catalogue, read_meta
    from fashiongen.lake.paths import LakePaths
    from fashiongen.models.contract import load_recommender
    from fashiongen.models.export import export_recommender

    paths = LakePaths.of(cfg)
    catalogue_uri = args.catalogue or cfg.data.catalogue_uri
    read_meta(catalogue_uri)  # no catalogue: `fashiongen prepare` comes before any model
    model = load_recommender(args.model or paths.recommender_model(cfg.recommender.model))
    catalogue = load_catalogue(catalogue_uri, with_images=False)
    out = args.out or paths.export(model.model_version)
    uris = export_recommender(model, catalogue, out, cfg.recommender.top_k, args.exclude_train)
    print(f"exported {model.kind} (model_version {model.model_version}): {catalogue.num_users} users, "
          f"{catalogue.num_items} items, top-{cfg.recommender.top_k} per category")
    for name, uri in uris.items():
        print(f"  {name}: {uri}")
    return 0
