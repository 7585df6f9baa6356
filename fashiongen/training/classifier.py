"""The catalogue's category classifiers, trained once per catalogue: the "judge" is the feature space of the
in-domain realism metrics (FID/KID, class consistency) of GAN samples and designs; the "guard", trained apart with
another seed, is what `design.category_guard` climbs (so the class-consistency judge is never the climbed network).

    classifier = ensure_classifier(cfg, catalogue)   # loads <lake>/models/classifier.pt, or trains and writes it

It is retrained when the catalogue it was trained on changed (another item count or category list).
"""
from __future__ import annotations

import logging
import time

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.data.contract import Catalogue, load_catalogue, read_meta
from fashiongen.lake.paths import LakePaths
from fashiongen.models.classifier import CategoryClassifier, load_classifier, save_classifier, train_classifier

log = logging.getLogger(__name__)

EPOCHS = 3


ROLES = {"judge": 0, "guard": 1}  # role -> seed offset: the guard a design climbs is never the judge's network


def ensure_classifier(cfg: Config, catalogue: Catalogue | None = None, role: str = "judge") -> CategoryClassifier:
    """The classifier of `role` at LakePaths.classifier_model(role) when it matches the catalogue (data.catalogue_uri
    unless given; checked from its metadata, so a current classifier costs no image read), else a fresh one (seeded
    simulation.seed + the role's offset) written there."""
    uri = LakePaths.of(cfg).classifier_model(role)
    meta = catalogue.meta if catalogue is not None else read_meta(cfg.data.catalogue_uri)
    trained_on = {"categories": list(meta["categories"]), "items": int(meta["counts"]["items"])}
    if storage.exists(uri):
        model = load_classifier(uri)
        if model.meta.get("categories") == trained_on["categories"] and model.meta.get("items") == trained_on["items"]:
            return model
    catalogue = catalogue if catalogue is not None else load_catalogue(cfg.data.catalogue_uri)
    started = time.perf_counter()
    model = train_classifier(catalogue.images, catalogue.item_category, epochs=EPOCHS,
                             seed=cfg.simulation.seed + ROLES[role])
    save_classifier(model, uri, meta=trained_on)
    log.info("trained the catalogue's %s category classifier in %.0f s (%s)", role, time.perf_counter() - started, uri)
    return model
