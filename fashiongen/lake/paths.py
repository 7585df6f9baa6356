"""Every location under the lake, in one place: ask `LakePaths`, never build a lake path by hand.

    paths = LakePaths.of(cfg)              # honours the config's explicit URIs (recommender.model_uri, ...)
    paths.recommender_model("dvbpr")       # <lake>/models/recommender/dvbpr.pt
    paths.attempt("2026-08-20", "a1b2")    # <lake>/designs/data/run_date=2026-08-20/attempt-a1b2

The tree:

    <lake>/models/recommender/<model>.pt                      trained recommenders
    <lake>/models/recommender/nightly/run_date=D/<model>.pt   nightly refreshes
    <lake>/models/generator.pt                                the trained generator
    <lake>/models/designer.pt                                 the amortised designer (train-designer)
    <lake>/models/classifier.pt, classifier-guard.pt          the catalogue's category classifiers (train-classifiers)
    <lake>/<kind>/<run_name>/                                 a training run's outputs (sample grids, markers)
    <lake>/evaluation/recommender/<split>/                    `fashiongen evaluate`
    <lake>/evaluation/nightly/run_date=D/                     nightly report and quarantine
    <lake>/export/recommender/<model_version>/                `fashiongen export`
    <lake>/landing/interactions/date=D/                       interactions landed for the nightly run
    <lake>/designs/metadata/                                  the designs Iceberg table's metadata (`table`)
    <lake>/designs/data/run_date=D/attempt-<id>/*.parquet     its data files: one folder per attempt at a date,
                                                              part of the table once `publish_run` commits it
    <lake>/designs/run_date=D/*.parquet, _SUCCESS             a Hive-layout run (before Iceberg): `lake migrate`
    <lake>/_catalog/iceberg.db                                the embedded Iceberg catalog of a local lake
    <lake>/images/run_date=D/<h[:2]>/<h>.png                  optional PNG objects (h = design_key)
    <lake>/_checkpoints/designs/run_date=D/                   Ray Data checkpoint of a run
    <lake>/_work/designs/run_date=D/                          a run's pairs and failures (rebuilt by a fresh start)
    <lake>/_state/designs/run_date=D/                         files committed with a run (its user digests)
    <lake>/pictures/user=<id_key>/                            `fashiongen design` pictures
    <lake>/pictures/run_date=D/sheet-<id_key>.png             `fashiongen lake sheet` contact sheets
    <lake>/reports/run_date=D/summary.json                    the run's summary, written when it is published
    <lake>/reports/run_date=D/index.html, user-<id_key>.html  `fashiongen report`: the run's HTML report

Ids never become path components: only their digests (`layout.id_key`, `layout.design_key`) do.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fashiongen import storage
from fashiongen.lake.layout import design_key, id_key, validate_run_date

if TYPE_CHECKING:
    from fashiongen.config import Config

DESIGNS_DIR = "designs"
LEGACY_MANIFEST = "_SUCCESS"  # the Hive layout's run manifest, read only by `lake migrate`
ATTEMPT_PREFIX = "attempt-"
CLASSIFIER_ROLES = ("judge", "guard")  # the catalogue's category classifiers (fashiongen train-classifiers)


def _run_partition(run_date: str) -> str:
    return f"run_date={validate_run_date(run_date)}"


@dataclass(frozen=True)
class LakePaths:
    """The lake's locations; the optional fields are explicit URIs from the config that replace a default."""

    root: str
    recommender_override: str = ""  # recommender.model_uri: where training writes the recommender
    generator_override: str = ""  # gan.model_uri
    design_recommender_override: str = ""  # generation.recommender_uri: what the designs job reads
    design_generator_override: str = ""  # generation.generator_uri
    landing_override: str = ""  # nightly.interactions_uri
    pictures_override: str = ""  # generation.pictures_uri
    designer_override: str = ""  # generation.designer_uri

    @classmethod
    def of(cls, cfg: "Config") -> "LakePaths":
        return cls(cfg.lake_uri, cfg.recommender.model_uri, cfg.gan.model_uri, cfg.generation.recommender_uri,
                   cfg.generation.generator_uri, cfg.nightly.interactions_uri, cfg.generation.pictures_uri,
                   cfg.generation.designer_uri)

    def _at(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    # ------------------------------------------------------------------ models
    def recommender_models(self) -> str:
        return self._at("models", "recommender")

    def recommender_model(self, model: str) -> str:
        """Where training writes recommender `model` (recommender.model_uri when set)."""
        return self.recommender_override or storage.join(self.recommender_models(), f"{model}.pt")

    def generator_model(self) -> str:
        return self.generator_override or self._at("models", "generator.pt")

    def designer_model(self) -> str:
        """The amortised designer (generation.designer_uri when set)."""
        return self.designer_override or self._at("models", "designer.pt")

    def design_models(self, model: str) -> tuple[str, str]:
        """(recommender, generator) that generation reads: generation.*_uri, else the trained ones."""
        return (self.design_recommender_override or self.recommender_model(model),
                self.design_generator_override or self.generator_model())

    def classifier_model(self, role: str = "judge") -> str:
        """The catalogue's category classifiers: "judge" is the feature space of the in-domain realism metrics,
        "guard" (trained apart, another seed) the one design.category_guard climbs."""
        if role not in CLASSIFIER_ROLES:
            raise ValueError(f"classifier role must be one of {CLASSIFIER_ROLES}, got {role!r}")
        return self._at("models", "classifier.pt" if role == "judge" else f"classifier-{role}.pt")

    def nightly_models(self) -> str:
        return storage.join(self.recommender_models(), "nightly")

    def nightly_model(self, run_date: str, model: str) -> str:
        return storage.join(self.nightly_models(), _run_partition(run_date), f"{model}.pt")

    def training_run(self, kind: str, run_name: str) -> str:
        """A training run's own outputs (sample grids, failure markers): <lake>/<kind>/<run_name>."""
        return self._at(kind, run_name)

    # ------------------------------------------------------------------ evaluation, export, landing
    def evaluation(self, split: str) -> str:
        return self._at("evaluation", "recommender", split)

    def nightly_evaluation(self, run_date: str) -> str:
        return self._at("evaluation", "nightly", _run_partition(run_date))

    def export(self, model_version: str) -> str:
        return self._at("export", "recommender", model_version)

    def landing(self) -> str:
        return self.landing_override or self._at("landing", "interactions")

    def landing_day(self, date: str) -> str:
        return storage.join(self.landing(), f"date={validate_run_date(date)}")

    # ------------------------------------------------------------------ the designs table
    def designs(self) -> str:
        """The designs table's location (its metadata/ and data/ folders)."""
        return self._at(DESIGNS_DIR)

    def iceberg_catalog(self) -> str:
        """The embedded SQLite Iceberg catalog of a local lake."""
        return self._at("_catalog", "iceberg.db")

    def run_data(self, run_date: str) -> str:
        """The folder of one date's data files, every attempt's."""
        return self._at(DESIGNS_DIR, "data", _run_partition(run_date))

    def attempt(self, run_date: str, attempt_id: str) -> str:
        """Where one attempt at a date writes its data files (`publish.prepare_run` names the attempt)."""
        return storage.join(self.run_data(run_date), f"{ATTEMPT_PREFIX}{attempt_id}")

    def legacy_run(self, run_date: str) -> str:
        """A Hive-layout run's prefix (before the Iceberg table)."""
        return self._at(DESIGNS_DIR, _run_partition(run_date))

    def legacy_manifest(self, run_date: str) -> str:
        return storage.join(self.legacy_run(run_date), LEGACY_MANIFEST)

    def checkpoint(self, run_date: str) -> str:
        """Ray Data checkpoint prefix of one run (outside designs/ so no reader ever scans it)."""
        return self._at("_checkpoints", DESIGNS_DIR, _run_partition(run_date))

    def work(self, run_date: str, *parts: str) -> str:
        """A run's working area (pairs, failures): outside designs/, never read by readers."""
        return self._at("_work", DESIGNS_DIR, _run_partition(run_date), *parts)

    def run_state(self, run_date: str, *parts: str) -> str:
        """Files committed with a run through its snapshot (content-named, never rewritten): its user digests."""
        return self._at("_state", DESIGNS_DIR, _run_partition(run_date), *parts)

    def images_run(self, run_date: str) -> str:
        return self._at("images", _run_partition(run_date))

    def image(self, run_date: str, user_id: str, category: str, rank: int) -> str:
        """Object URI of a design's PNG: <lake>/images/run_date=D/<h[:2]>/<h>.png (h = design_key)."""
        key = design_key(user_id, category, rank)
        return storage.join(self.images_run(run_date), key[:2], f"{key}.png")

    # ------------------------------------------------------------------ pictures
    def user_pictures(self, user_id: str) -> str:
        """Where `fashiongen design` writes one user's pictures (generation.pictures_uri replaces <lake>/pictures)."""
        return storage.join(self.pictures_override or self._at("pictures"), f"user={id_key('user', user_id)}")

    def reports(self) -> str:
        return self._at("reports")

    def report(self, run_date: str) -> str:
        """The run's self-contained HTML report."""
        return self._at("reports", _run_partition(run_date), "index.html")

    def user_report(self, run_date: str, user_id: str) -> str:
        """One user's page of a run's report (named by the id's digest, never the raw id)."""
        return self._at("reports", _run_partition(run_date), f"user-{id_key('user', user_id)}.html")

    def run_summary(self, run_date: str) -> str:
        """The run's summary (JSON), written when the run is published."""
        return self._at("reports", _run_partition(run_date), "summary.json")

    def sheet(self, run_date: str, user_id: str) -> str:
        """Where `fashiongen lake sheet` writes a user's contact sheet for a run."""
        return self._at("pictures", _run_partition(run_date), f"sheet-{id_key('user', user_id)}.png")
