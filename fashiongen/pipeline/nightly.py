"""The nightly run: fold the day's interactions into user vectors, check them, design for changed users.

    fashiongen nightly --config configs/default.yaml run_date=2026-11-26

1. A run date that is already published is a no-op (`--force` recomputes it).
2. Refresh: start from the latest nightly model before the run date (else the trained recommender), read every
   landed interaction up to the run date (`fashiongen.data.landing`), and refit θ of the users with interactions
   landed *on* the run date, the image network frozen: in closed form when the model defines θ so (DVBPR's content
   profiles, `Recommender.refit_users`), else by SGD (`fashiongen.training.refresh`). Everyone else keeps their
   vector bit for bit. Written to <lake>/models/recommender/nightly/run_date=D/<model>.pt; a rerun of the same
   date rebuilds the same model.
3. Evaluate: the changed users' validation AUC (full, the paper's formula) before and after; the run stops without
   publishing when it falls by more than nightly.max_auc_drop. Report: <lake>/evaluation/nightly/run_date=D.json.
4. Design mode: when an amortised designer was trained (`fashiongen train-designer`) and nightly.designer is on,
   the night designs with design.mode=amortised+refine. The designer stays valid while only users' θ move (the
   refresh never touches the image network); when the recommender's image network or the generator changed since
   it was trained, it is retrained first (Ray Train, resuming a crashed retrain). Without one: design.mode as set.
5. Generate and publish: the catalogue's category classifiers are trained first when missing or stale
   (`fashiongen.training.classifier.train_classifiers`, a no-op on an unchanged catalogue), then the Ray Data designs
   job runs in incremental mode with the refreshed model, so only users whose vector changed (or who were never
   designed) get new designs. A crash resumes on rerun.
"""
from __future__ import annotations

import dataclasses
import json
import logging

import numpy as np

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.errors import FashiongenError
from fashiongen.lake.paths import LakePaths

log = logging.getLogger(__name__)


class NightlyError(FashiongenError, RuntimeError):
    """A nightly run that must not publish; the message says why and what to do."""


def previous_model_uri(cfg: Config, run_date: str) -> str:
    """The latest nightly model strictly before `run_date`, else the trained recommender."""
    paths, model = LakePaths.of(cfg), cfg.recommender.model
    dates = sorted(n.removeprefix("run_date=") for n in storage.list_dir(paths.nightly_models())
                   if n.startswith("run_date="))
    for date in reversed(dates):
        if date < run_date and storage.exists(paths.nightly_model(date, model)):
            return paths.nightly_model(date, model)
    return paths.recommender_model(model)


def refresh(cfg: Config, run_date: str) -> dict:
    """Steps 2 and 3: write the refreshed model and its evaluation; returns the report (raises NightlyError)."""
    from fashiongen.data.contract import Quarantine, load_catalogue
    from fashiongen.data.landing import accept_landed, read_landed
    from fashiongen.evaluation.auc import full_auc, held_out
    from fashiongen.models.bpr import TrainSet
    from fashiongen.models.contract import load_recommender
    from fashiongen.training.refresh import refresh_user_vectors

    catalogue = load_catalogue(cfg.data.catalogue_uri, with_images=False)
    base_uri = previous_model_uri(cfg, run_date)
    model = load_recommender(base_uri)
    paths = LakePaths.of(cfg)
    landing = paths.landing()
    quarantine = Quarantine()  # bad landed files and rows, with reasons (written below, counted in the report)
    accepted = accept_landed(read_landed(paths, run_date, quarantine), catalogue, run_date, quarantine)
    changed = accepted.today_users
    train = TrainSet.from_pairs(np.concatenate([catalogue.train_users, accepted.users]),
                                np.concatenate([catalogue.train_items, accepted.items]),
                                catalogue.num_users, catalogue.num_items)
    data = held_out(catalogue, "validation", changed)
    auc_before = float(np.nanmean(full_auc(model.score, data))) if len(changed) else float("nan")
    losses: list[float] = []
    if not model.refit_users(changed, train):  # a closed-form user model (DVBPR profiles) needs no SGD
        vectors, losses = refresh_user_vectors(model.user_vectors(), model.item_features(), changed, train,
                                               steps=cfg.nightly.refresh_steps, lr=cfg.nightly.refresh_lr,
                                               lambda_theta=cfg.recommender.lambda_theta, seed=cfg.nightly.seed)
        if len(changed):
            model.set_user_vectors(changed, vectors)
    auc_after = float(np.nanmean(full_auc(model.score, data))) if len(changed) else float("nan")
    report = {"run_date": run_date, "base_model": base_uri, "base_model_version": model.model_version,
              "landing": landing, "changed_users": int(len(changed)), "landed_accepted": int(len(accepted.users)),
              "quarantined": accepted.quarantine.counts(), "validation_auc_before": auc_before,
              "validation_auc_after": auc_after, "refresh_loss_first": losses[0] if losses else None,
              "refresh_loss_last": losses[-1] if losses else None}
    out = paths.nightly_evaluation(run_date)
    if accepted.quarantine.rows:
        storage.write_table(accepted.quarantine.to_table(), storage.join(out, "quarantine.parquet"))
    drop = auc_before - auc_after
    if len(changed) and drop > cfg.nightly.max_auc_drop:
        report["verdict"] = f"refused: validation AUC fell by {drop:.4f} (> nightly.max_auc_drop)"
        storage.write_bytes(storage.join(out, "report.json"), json.dumps(report, indent=2).encode())
        raise NightlyError(f"nightly {run_date}: the refreshed vectors' validation AUC fell from {auc_before:.4f} to "
                           f"{auc_after:.4f} for {len(changed)} users, more than nightly.max_auc_drop="
                           f"{cfg.nightly.max_auc_drop}; nothing was published. Inspect the landed interactions "
                           f"under {landing} (and {out}), or raise nightly.max_auc_drop.")
    model.meta = {**model.meta, "nightly": {"run_date": run_date, "base_model": base_uri,
                                             "changed_users": int(len(changed))}}
    report["model_uri"] = paths.nightly_model(run_date, cfg.recommender.model)
    report["model_version"] = model.save(report["model_uri"])  # a content hash: designs name the vectors behind them
    report["verdict"] = "accepted"
    storage.write_bytes(storage.join(out, "report.json"), json.dumps(report, indent=2).encode())
    return report


def design_settings(cfg: Config, ray_address: str | None = None) -> tuple[Config, str]:
    """Step 4: `cfg` with the night's design mode, and why (the trained designer, retrained first when stale)."""
    from fashiongen.models.contract import load_generator, load_recommender
    from fashiongen.models.designer import DesignerError, load_designer
    from fashiongen.training.designer import train_designer_on_lake

    paths = LakePaths.of(cfg)
    uri = paths.designer_model()
    if not cfg.nightly.designer:
        return cfg, f"design.mode={cfg.design.mode} (nightly.designer=false)"
    if not storage.exists(uri):
        return cfg, f"design.mode={cfg.design.mode} (no designer at {uri}: fashiongen train-designer trains one)"
    rec_uri, gen_uri = paths.design_models(cfg.recommender.model)
    designer = load_designer(uri)
    try:
        designer.check_compatible(load_recommender(rec_uri), load_generator(gen_uri))
        why = f"designer {designer.model_version}"
    except DesignerError as exc:
        log.info("retraining the designer: %s", exc)
        why = f"designer retrained for the new models: {train_designer_on_lake(cfg, ray_address).model_version}"
    amortised = dataclasses.replace(cfg, design=dataclasses.replace(cfg.design, mode="amortised+refine"))
    return amortised, f"design.mode=amortised+refine ({why})"


def run_nightly(cfg: Config, force: bool = False, ray_address: str | None = None):
    """The whole nightly run for cfg.run_date (default today UTC); returns the designs RunSummary, or None when
    the date is already published (a no-op unless `force`)."""
    from fashiongen.generation.job import run_generation
    from fashiongen.lake import publish
    from fashiongen.lake.table import Lake
    from fashiongen.lake.layout import today_utc, validate_run_date
    from fashiongen.report.page import write_report
    from fashiongen.training.classifier import train_classifiers

    run_date = validate_run_date(cfg.run_date or today_utc())
    if publish.run_status(Lake.of(cfg), run_date) == publish.RunStatus.COMPLETE and not force:
        print(f"nightly {run_date}: already published in {Lake.of(cfg).run_label(run_date)}; nothing to do "
              "(--force recomputes)")
        return None
    report = refresh(cfg, run_date)
    print(f"nightly {run_date}: refreshed {report['changed_users']} user vector(s) from {report['landed_accepted']} "
          f"landed interaction(s); validation AUC of those users {report['validation_auc_before']:.4f} -> "
          f"{report['validation_auc_after']:.4f}; quarantined: {report['quarantined'] or 'none'}")
    print(f"model: {report['model_uri']} (model_version {report['model_version']})")
    generation = dataclasses.replace(cfg.generation, recommender_uri=report["model_uri"], incremental=True)
    run_cfg, why = design_settings(dataclasses.replace(cfg, run_date=run_date, generation=generation), ray_address)
    print(f"nightly {run_date}: {why}")
    train_classifiers(run_cfg)
    summary = run_generation(run_cfg, force=force, ray_address=ray_address)
    write_report(run_cfg, run_date)  # LakePaths.report(run_date)
    return summary
