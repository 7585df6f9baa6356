"""`fashiongen design --user USER_ID`: design for one user and write the pictures.

Loads the catalogue (data.catalogue_uri), the recommender and generator checkpoints (`LakePaths.design_models`: the
trained ones unless generation.recommender_uri / generator_uri say otherwise) and, for a simulated catalogue, its
ground truth. The pair ids and run date seed the latents exactly as the nightly job does, so the pictures show the
designs the lake holds for that date. Writes under generation.pictures_uri (default <lake>/pictures)/user=<key>/
(key = a digest of the user id: ids never become paths):

    sheet.png                    catalogue top-k beside generated top-k per category, scores (| true preference)
    trajectory_<i>_<category>.png  every restart at every optimisation step (as the official PM figures)
    item_<key>.png               with --from-item: the item, its reconstruction and its redesign step by step

and prints their paths.
"""
from __future__ import annotations

import argparse
import re

import numpy as np

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.errors import FashiongenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="user_id to design for")
    parser.add_argument("--categories", default="", help="comma-separated categories (default: every category)")
    parser.add_argument("--from-item", default="", help="item_id to redesign toward the user's taste")
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")


def _slug(name: str) -> str:
    """A category name fit for a file name ("T-shirt/top" -> "T-shirt-top")."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "category"


def _categories(wanted: str, known: list[str]) -> list[str]:
    names = [c.strip() for c in wanted.split(",") if c.strip()] or list(known)
    unknown = [c for c in names if c not in known]
    if unknown:
        raise FashiongenError(f"--categories: {unknown} are not categories the generator knows ({known})")
    return names


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.data.contract import load_catalogue
    from fashiongen.generation.engine import PreferenceEngine, category_mapping
    from fashiongen.generation.invert import invert_images, redesign_items
    from fashiongen.generation.pictures import SheetRow, contact_sheet, save_png, trajectory_strip
    from fashiongen.lake.layout import id_key, make_pair_id, today_utc, validate_run_date
    from fashiongen.lake.paths import LakePaths
    from fashiongen.models.contract import load_generator, load_recommender

    catalogue = load_catalogue(cfg.data.catalogue_uri)
    g = cfg.design
    paths = LakePaths.of(cfg)
    rec_uri, gen_uri = paths.design_models(cfg.recommender.model)
    recommender, generator = load_recommender(rec_uri), load_generator(gen_uri)
    oracle = None
    if catalogue.simulated:
        from fashiongen.data.oracle import load_truth
        oracle = load_truth(cfg.data.catalogue_uri, catalogue)
    to_generator = category_mapping(catalogue.categories, generator.categories)
    guard = None
    if g.category_guard:
        from fashiongen.models.classifier import load_catalogue_classifier, trained_on
        guard = load_catalogue_classifier(paths.classifier_model("guard"), trained_on(catalogue.meta), "guard")
    from fashiongen.generation.job import load_designer_for, load_ensemble, load_judge
    from fashiongen.models.designer import load_designer

    designer_uri, _ = load_designer_for(cfg, recommender, generator)
    ensemble = load_ensemble(cfg, recommender, catalogue, load_judge(cfg, recommender, catalogue)) \
        if cfg.generation.ensemble_uris else {}
    engine = PreferenceEngine(recommender, generator, g, to_generator[catalogue.item_category], device=args.device,
                              oracle=oracle, item_images=catalogue.images, guard=guard,
                              guard_class=category_mapping(generator.categories, catalogue.categories),
                              designer=load_designer(designer_uri) if designer_uri else None,
                              ensemble=list(ensemble.values()))
    user = int(catalogue.user_index([args.user])[0])
    names = _categories(args.categories, list(generator.categories))
    cat_idx = np.array([generator.categories.index(c) for c in names])
    run_date = validate_run_date(cfg.run_date or today_utc())
    result = engine.optimise([make_pair_id(args.user, c) for c in names], np.full(len(names), user), cat_idx, run_date,
                             trajectory=True)
    out_dir = paths.user_pictures(args.user)
    d, p, k = result.designs, result.pairs, engine.top_k
    rows = []
    for row, name in enumerate(names):
        items = p["dataset_top_item_idx"][row]
        real = np.stack([catalogue.images[i] if i >= 0 else np.zeros_like(catalogue.images[0]) for i in items])
        rows.append(SheetRow(label=name, real_images=real, real_scores=p["dataset_top_scores"][row],
                             generated_images=d["image"][row * k:(row + 1) * k],
                             generated_scores=d["score"][row * k:(row + 1) * k],
                             real_truth=p["oracle_dataset_top"][row] if oracle else None,
                             generated_truth=d["oracle_score"][row * k:(row + 1) * k] if oracle else None))
    written = [save_png(contact_sheet(f"user {args.user}  {run_date}  (score{' | true' if oracle else ''})", rows),
                        storage.join(out_dir, "sheet.png"))]
    traj = result.trajectory
    assert traj is not None
    for row, name in enumerate(names):
        written.append(save_png(trajectory_strip(
            f"user {args.user}, {name}: restarts x steps", traj["image"][row].swapaxes(0, 1),
            traj["score"][row].T), storage.join(out_dir, f"trajectory_{cat_idx[row]}_{_slug(name)}.png")))
    if args.from_item:
        item = int(np.searchsorted(catalogue.item_ids, args.from_item))
        if item >= catalogue.num_items or catalogue.item_ids[item] != args.from_item:
            raise FashiongenError(f"--from-item {args.from_item!r} is not an item of {cfg.data.catalogue_uri!r}")
        cat = to_generator[catalogue.item_category[item]]
        if cat < 0:
            raise FashiongenError(f"item {args.from_item!r} is of a category the generator was not trained on")
        fit = invert_images(generator, catalogue.images[item:item + 1], np.array([cat]), g, device=args.device)
        path = redesign_items(engine.objective, np.array([user]), fit.latent, np.array([cat]), g)
        item_score = float(recommender.score(np.array([user]), np.array([item]))[0, 0])
        images = [[catalogue.images[item], *path.image[0]]]  # the item may differ in size from the designs
        scores = np.concatenate([[item_score], path.score[0]])[None]
        title = (f"item {args.from_item} (left), fit error {fit.reconstruction_error[0]:.4f}, "
                 f"then redesign for {args.user}")
        written.append(save_png(trajectory_strip(title, images, scores),
                                storage.join(out_dir, f"item_{id_key('item', args.from_item)}.png")))
    for uri in written:
        print(uri)
    return 0
