"""`fashiongen demo`: the whole pipeline on the embedded default, as the README's first command runs it.

    fashiongen demo --config configs/default.yaml

Local Ray, a local lake folder, Fashion-MNIST with simulated shoppers. Each step is the same command a user
runs by hand (prepare, train-classifiers, train-recommender for the baselines, DVBPR and the held-out judge, evaluate, export,
train-gan, generate, lake sheet, report), in pipeline order, with its progress printed as it goes; the end prints the AUC
table, the designs summary (the three judges' verdicts and the designs' realism), where the Parquet files and
contact sheets are, and last the path of the run's HTML report.
A GPU is used when torch sees one. Rerunning reuses what exists: the catalogue, finished training runs (resumed by
name) and a published run date (a no-op).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import time

from fashiongen import storage
from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--baselines", default="poprank,categorypop,bprmf,vbpr",
                        help="comma-separated baselines to train beside DVBPR (empty: none)")
    parser.add_argument("--sheets", type=int, default=3, help="contact sheets to write (one per user)")


def run(cfg: Config, args: argparse.Namespace) -> int:
    import torch

    from fashiongen.cli import build_parser
    from fashiongen.commands.evaluate import TASTE_COLUMNS
    from fashiongen.evaluation.recommender_eval import markdown_table
    from fashiongen.generation.job import run_generation
    from fashiongen.lake import layout, reader
    from fashiongen.lake.paths import LakePaths
    from fashiongen.lake.table import Lake
    from fashiongen.report.page import write_report
    from fashiongen.runtime import RAY_LOGS, ensure_ray

    began = time.perf_counter()
    timings: dict[str, float] = {}
    parser = build_parser()
    if torch.cuda.is_available():
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, use_gpu=True))
    cfg = dataclasses.replace(cfg, run_date=layout.validate_run_date(cfg.run_date or layout.today_utc()))
    paths = LakePaths.of(cfg)
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()]
    judge_uri = cfg.generation.judge_uri
    steps = 9 + len(baselines) + bool(judge_uri)
    step = 0

    def call(title: str, command: str, step_cfg: Config, *flags: str) -> None:
        nonlocal step
        step += 1
        print(f"\n=== [{step}/{steps}] {title}: fashiongen {command} {' '.join(flags)}".rstrip() + " ===", flush=True)
        parsed = parser.parse_args([command, *flags])
        t0 = time.perf_counter()
        importlib.import_module(parsed._module).run(step_cfg, parsed)
        timings[title] = time.perf_counter() - t0

    ensure_ray()
    call("catalogue", "prepare", cfg)
    call("category classifiers", "train-classifiers", cfg)
    for name in baselines:
        call(f"baseline {name}", "train-recommender", _with_model(cfg, name))
    call("DVBPR", "train-recommender", cfg)
    model_flags = [f for name in [*baselines, cfg.recommender.model]
                   for f in ("--model", paths.recommender_model(name))]
    if judge_uri:
        call("held-out judge", "train-recommender", held_out_judge(cfg))
        model_flags += ["--model", judge_uri]
    call("evaluation", "evaluate", cfg, *model_flags)
    call("export", "export", cfg)
    call("GAN", "train-gan", cfg)

    step += 1
    print(f"\n=== [{step}/{steps}] designs: fashiongen generate (run_date={cfg.run_date}) ===", flush=True)
    t0 = time.perf_counter()
    summary = run_generation(cfg)
    timings["designs"] = time.perf_counter() - t0
    print(summary.to_markdown())

    step += 1
    print(f"\n=== [{step}/{steps}] contact sheets: fashiongen lake sheet --user <id> ===", flush=True)
    t0 = time.perf_counter()
    designed = reader.read_run(Lake.of(cfg), cfg.run_date, columns=["user_id"]).column("user_id")
    sheets = []
    for user in sorted(set(designed.to_pylist()))[:args.sheets]:
        parsed = parser.parse_args(["lake", "sheet", "--user", user, "--run-date", cfg.run_date])
        importlib.import_module(parsed._module).run(cfg, parsed)
        sheets.append((user, paths.sheet(cfg.run_date, user)))
    timings["contact sheets"] = time.perf_counter() - t0

    step += 1
    print(f"\n=== [{step}/{steps}] report: fashiongen report --run-date {cfg.run_date} ===", flush=True)
    t0 = time.perf_counter()
    report = write_report(cfg, cfg.run_date, timings={**timings, "demo until the report": t0 - began})
    timings["report"] = time.perf_counter() - t0
    print(f"report: {report}")

    evaluation = paths.evaluation("test")
    results = storage.read_table(storage.join(evaluation, "results.parquet"))
    print("\n" + "=" * 100 + "\nfashiongen demo: done in "
          f"{time.perf_counter() - began:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})\n")
    print("## Recommenders (test split; 95% bootstrap intervals)\n")
    rows = results.to_pylist()
    print(markdown_table(rows, extra=TASTE_COLUMNS if "taste_within" in results.column_names else ()))
    print("\n## Designs\n")
    print(summary.to_markdown())
    print("\n## Where things are\n")
    print(f"- designs: the Iceberg table {Lake.of(cfg).run_label(cfg.run_date)} at {paths.designs()}")
    print("- query them: `fashiongen lake runs`, `fashiongen lake show --user <id>`; see the README's 'Reading the lake'")
    for user, out in sheets:
        print(f"- contact sheet of {user}: {out}")
    print(f"- models: {paths.recommender_models()}, {paths.generator_model()}; evaluation: {evaluation}")
    print(f"- logs: Ray's workers, Ray Train and Ray Data write theirs under {RAY_LOGS} (the console shows progress, "
          "warnings and errors)")
    print(f"- the run's report (open it in a browser): {report}")
    return 0


def held_out_judge(cfg: Config) -> Config:
    """The held-out scorer's training: the same model kind trained apart, with another seed and another negative
    sample (half of the negatives from the positive's category), written to generation.judge_uri. Never climbed."""
    rec = dataclasses.replace(cfg.recommender, seed=cfg.recommender.seed + 1, negatives_same_category=0.5,
                              model_uri=cfg.generation.judge_uri)
    return dataclasses.replace(cfg, recommender=rec)


def _with_model(cfg: Config, model: str) -> Config:
    return dataclasses.replace(cfg, recommender=dataclasses.replace(cfg.recommender, model=model))
