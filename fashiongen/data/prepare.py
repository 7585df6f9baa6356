"""Import a catalogue a catalogue from data.source, simulate shoppers where the source has no
interactions (Fashion-MNIST; a folder without data.interactions_path), and write it to data.catalogue_uri.

Idempotent: a complete catalogue built from the same source and settings is reused (`--force` rebuilds);
one built from other settings is an error rather than silently overwritten.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import uuid

import numpy as np

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.data.contract import ImportedCatalogue, read_meta
from fashiongen.errors import FashiongenError

log = logging.getLogger(__name__)
SOURCES = ("fashion_mnist", "amazon_npy", "folder")
CEILING_USERS = 5000  # users evaluated for the oracle AUC ceiling written to catalogue.json


def simulates(cfg: Config) -> bool:
    """Whether this source gets simulated shoppers (it has no interactions of its own)."""
    return cfg.data.source == "fashion_mnist" or (cfg.data.source == "folder" and not cfg.data.interactions_path)


def build_params(cfg: Config) -> dict:
    """The settings a catalogue depends on (its identity for reuse)."""
    d = cfg.data
    if d.source not in SOURCES:
        raise FashiongenError(f"data.source={d.source!r} is not a known source: use one of {list(SOURCES)}")
    per_source = {
        "fashion_mnist": {"fashion_mnist_dir": d.fashion_mnist_dir, "max_items": d.max_items},
        "amazon_npy": {"npy_path": d.npy_path, "image_size": d.image_size},
        "folder": {"images_dir": d.images_dir, "interactions_path": d.interactions_path, "image_size": d.image_size},
    }[d.source]
    params = {"source": d.source, **per_source, "split_seed": d.split_seed, "cold_threshold": d.cold_threshold}
    if simulates(cfg):
        params["simulation"] = dataclasses.asdict(cfg.simulation)
    return params


def fingerprint(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]


def _import(cfg: Config):
    """(ImportedCatalogue, simulation or None) for data.source."""
    from fashiongen.data.simulate import simulate_shoppers

    d = cfg.data
    if d.source == "fashion_mnist":
        from fashiongen.data.fashion_mnist import items_table, load_fashion_mnist

        image_set = load_fashion_mnist(d.fashion_mnist_dir, d.max_items)
        sim = simulate_shoppers(image_set.images, image_set.item_ids, image_set.item_category, image_set.categories,
                                cfg.simulation)
        imported = ImportedCatalogue(items=items_table(image_set), interactions=sim.interactions,
                                     meta={"source": "fashion_mnist"}, categories=image_set.categories)
        return imported, sim
    if d.source == "amazon_npy":
        from fashiongen.data.amazon_npy import import_amazon_npy

        return import_amazon_npy(d.npy_path, d.allow_pickle, d.image_size), None
    from fashiongen.data.folder import import_folder, import_images

    if d.interactions_path:
        return import_folder(d.images_dir, d.interactions_path, d.image_size), None
    from fashiongen.data.images import decode_image

    items, categories, quarantine = import_images(d.images_dir, d.image_size)
    cat_index = {c: k for k, c in enumerate(categories)}
    images = np.stack([decode_image(b) for b in items.column("image_png").to_pylist()])
    item_category = np.array([cat_index[c] for c in items.column("category").to_pylist()], np.int64)
    item_ids = np.asarray(items.column("item_id").to_pylist(), dtype=str)
    sim = simulate_shoppers(images, item_ids, item_category, categories, cfg.simulation)
    imported = ImportedCatalogue(items=items, interactions=sim.interactions, meta={"source": "folder"},
                                 categories=categories, quarantine=quarantine)
    return imported, sim


def prepare_catalogue(cfg: Config, force: bool = False) -> tuple[dict, bool]:
    """Build (or reuse) the catalogue at data.catalogue_uri. Returns (catalogue.json metadata, reused)."""
    from fashiongen.data.contract import load_catalogue
    from fashiongen.data.oracle import TRUTH_DIR, load_truth, oracle_auc, truth_exists, write_truth

    uri = cfg.data.catalogue_uri
    params = build_params(cfg)
    key = fingerprint(params)
    if storage.exists(storage.join(uri, "catalogue.json")) and not force:
        meta = read_meta(uri)
        complete = not meta.get("simulated") or truth_exists(uri)
        if meta.get("fingerprint") == key and complete:
            return meta, True
        old = meta.get("params", {})
        changed = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k)) or ["(incomplete build)"]
        raise FashiongenError(f"{uri} holds a catalogue built with other settings (differs in {changed}): rebuild "
                              "it with `fashiongen prepare --force`, or set data.catalogue_uri to another location")
    # Build and validate the whole new catalogue in a staging prefix beside it; only then replace the old one
    # (catalogue.json last), so a bad source under --force leaves the old catalogue intact.
    staging = f"{uri.rstrip('/')}.staging-{uuid.uuid4().hex[:12]}"
    try:
        imported, sim = _import(cfg)
        imported.meta.update({"simulated": sim is not None, "params": params, "fingerprint": key})
        if sim is not None:
            imported.meta["simulator"] = sim.params
            write_truth(staging, sim.truth)
        meta = imported.write(staging, split_seed=cfg.data.split_seed, cold_threshold=cfg.data.cold_threshold)
        if sim is not None:
            catalogue = load_catalogue(staging, with_images=False)
            truth = load_truth(staging, catalogue)
            users = min(CEILING_USERS, catalogue.num_users)
            meta["oracle"] = {
                "version": truth.version, "users_evaluated": users,
                "auc_ceiling_test": round(oracle_auc(catalogue, truth, max_users=users), 4),
                "auc_category_only_test": round(oracle_auc(catalogue, truth, score="category", max_users=users), 4),
            }
            storage.write_bytes(storage.join(staging, "catalogue.json"), json.dumps(meta, indent=2).encode())
        storage.delete(storage.join(uri, "catalogue.json"))  # from here on the old catalogue is incomplete
        storage.delete(storage.join(uri, TRUTH_DIR))
        storage.copy_tree(staging, uri, last="catalogue.json")
    finally:
        storage.delete(staging)
    return meta, False
