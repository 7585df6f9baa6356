"""DVBPR training speed: triples/s in-process against the Ray Train path (1 and 2 workers), one epoch each, same
catalogue, model and batch, in one run (ratios, not absolute figures, are what carry across machines).

    python bench/recommender_speed.py --catalogue lake/catalogue [--threads 1] [overrides ...]

In-process is `DVBPR.fit` (the triples sampled in numpy, the catalogue converted to float once); Ray Train is
`train_recommender` (Ray Data feeds each worker its shard of triples, DDP averages gradients). The per-epoch
triples/s excludes start-up; the wall column includes it (Ray Train's controller, worker group and dataset).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", required=True, help="a prepared catalogue URI (e.g. the demo's)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. recommender.batch_size=256")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import ray
    import torch

    from fashiongen.config import load_config
    from fashiongen.data.contract import load_catalogue
    from fashiongen.models.contract import recommender_class
    from fashiongen.training.recommender import train_recommender

    torch.set_num_threads(args.threads)
    workdir = tempfile.mkdtemp(prefix="bench-rec-speed-")
    base = [f"data.catalogue_uri={args.catalogue}", f"lake_uri={workdir}/lake", f"train.storage_path={workdir}/train",
            "recommender.epochs=1", *args.overrides]
    catalogue = load_catalogue(args.catalogue)
    rows = []
    began = time.perf_counter()
    history = recommender_class("dvbpr").from_config(load_config(None, base).recommender).fit(catalogue)
    rows.append(("in-process", history[0]["triples_per_s"], time.perf_counter() - began))
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": str(args.threads)}})
    for workers in (1, 2):
        cfg = load_config(None, base + [f"train.num_workers={workers}", f"train.run_name=speed-{workers}"])
        began = time.perf_counter()
        result = train_recommender(cfg, catalogue=catalogue)
        rows.append((f"Ray Train, {workers} worker(s)", result.history[0]["triples_per_s"],
                     time.perf_counter() - began))
    print(f"\n{catalogue.num_items} items, {len(catalogue.train_users)} training interactions, "
          f"{args.threads} torch thread(s) per process\n")
    print("| path | triples/s (epoch) | vs in-process | wall s (with start-up) |")
    print("|---|---:|---:|---:|")
    for name, rate, wall in rows:
        print(f"| {name} | {rate:.0f} | {rate / rows[0][1]:.2f}x | {wall:.0f} |")


if __name__ == "__main__":
    main()
