"""The catalogue's category classifiers, trained once per catalogue by their own pipeline step
(`fashiongen train-classifiers`): the "judge" is the feature space of the in-domain realism metrics (FID/KID, class
consistency) of GAN samples and designs; the "guard", trained apart with another seed, is what
`design.category_guard` climbs (so the class-consistency judge is never the climbed network).

    train_classifiers(cfg)                   # both roles, each only when missing or trained on another catalogue
    classifier = ensure_classifier(cfg)      # one role: loads <lake>/models/classifier.pt, or trains and writes it

The designs job and `fashiongen design` train nothing: they load the classifiers with
`models.classifier.load_catalogue_classifier` and refuse with one line when one is missing.
"""
from __future__ import annotations

import logging
import time

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.data.contract import Catalogue, load_catalogue, read_meta
from fashiongen.lake.paths import CLASSIFIER_ROLES, LakePaths
from fashiongen.models.classifier import CategoryClassifier, load_catalogue_classifier, save_classifier, \
    train_classifier, trained_on
from fashiongen.models.contract import CheckpointError

log = logging.getLogger(__name__)

EPOCHS = 3
SEED_OFFSET = {"judge": 0, "guard": 1}  # the guard a design climbs is never the judge's network
assert set(SEED_OFFSET) == set(CLASSIFIER_ROLES)


def ensure_classifier(cfg: Config, catalogue: Catalogue | None = None, role: str = "judge") -> CategoryClassifier:
    """The classifier of `role` at LakePaths.classifier_model(role) when it matches the catalogue (data.catalogue_uri
    unless given), else a fresh one (seeded simulation.seed + the role's offset) written there."""
    uri = LakePaths.of(cfg).classifier_model(role)
    record = trained_on(catalogue.meta if catalogue is not None else read_meta(cfg.data.catalogue_uri))
    if storage.exists(uri):
        try:
            return load_catalogue_classifier(uri, record, role)
        except CheckpointError:
            pass  # trained on another catalogue: retrain it below
    catalogue = catalogue if catalogue is not None else load_catalogue(cfg.data.catalogue_uri)
    started = time.perf_counter()
    model = train_classifier(catalogue.images, catalogue.item_category, epochs=EPOCHS,
                             seed=cfg.simulation.seed + SEED_OFFSET[role])
    save_classifier(model, uri, meta=record)
    log.info("trained the catalogue's %s category classifier in %.0f s (%s)", role, time.perf_counter() - started, uri)
    return model


def _is_current(uri: str, record: dict, role: str) -> bool:
    try:
        load_catalogue_classifier(uri, record, role)
    except CheckpointError:
        return False
    return True


def train_classifiers(cfg: Config, catalogue: Catalogue | None = None) -> dict[str, str]:
    """Both roles' classifiers (each trained only when missing or stale; the catalogue's images read at most once)
    -> role -> URI."""
    uris = {role: LakePaths.of(cfg).classifier_model(role) for role in CLASSIFIER_ROLES}
    record = trained_on(catalogue.meta if catalogue is not None else read_meta(cfg.data.catalogue_uri))
    stale = [role for role, uri in uris.items() if not _is_current(uri, record, role)]
    if stale and catalogue is None:
        catalogue = load_catalogue(cfg.data.catalogue_uri)
    for role in stale:
        ensure_classifier(cfg, catalogue, role)
    return uris
