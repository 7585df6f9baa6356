"""DVBPR training speed: triples/s in-process against the Ray Train path, one epoch each, same catalogue, model and
batch, in one run (ratios, not absolute figures, are what carry across machines).

    python bench/recommender_speed.py --catalogue lake/catalogue [--cpus 2] [overrides ...]

Rows: in-process `DVBPR.fit` at 1 torch thread (the baseline: the threads a Ray worker ran before
train.cpus_per_worker) and at --cpus threads, both in the contiguous memory format; Ray Train (`train_recommender`:
each worker draws its shard of the epoch's triples, DDP averages gradients) with 1 worker x 1 CPU, 1 worker x --cpus
CPUs, the same with channels-last, and --cpus workers x 1 CPU. The per-epoch triples/s excludes start-up; the wall column includes it
(Ray Train's controller and worker group, the catalogue load).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", required=True, help="a prepared catalogue URI (e.g. the demo's)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the machine to use")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. recommender.batch_size=256")
    args = parser.parse_args()

    import ray
    import torch

    from fashiongen.config import load_config
    from fashiongen.data.contract import load_catalogue
    from fashiongen.models.contract import recommender_class
    from fashiongen.training.recommender import train_recommender

    workdir = tempfile.mkdtemp(prefix="bench-rec-speed-")
    base = [f"data.catalogue_uri={args.catalogue}", f"lake_uri={workdir}/lake", f"train.storage_path={workdir}/train",
            "recommender.epochs=1", "recommender.channels_last=false", *args.overrides]
    catalogue = load_catalogue(args.catalogue)
    rows = []
    for threads in sorted({1, args.cpus}):
        torch.set_num_threads(threads)
        began = time.perf_counter()
        history = recommender_class("dvbpr").from_config(load_config(None, base).recommender).fit(catalogue)
        rows.append((f"in-process, {threads} thread(s)", history[0]["triples_per_s"], time.perf_counter() - began))
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    runs = [(1, 1, False), (1, args.cpus, False), (1, args.cpus, True), (args.cpus, 1, False)]
    for workers, cpus, channels_last in dict.fromkeys(runs):
        name = f"Ray Train, {workers} worker(s) x {cpus} CPU(s)" + (", channels-last" if channels_last else "")
        cfg = load_config(None, base + [f"train.num_workers={workers}", f"train.cpus_per_worker={cpus}",
                                        f"recommender.channels_last={str(channels_last).lower()}",
                                        f"train.run_name=speed-{workers}-{cpus}-{int(channels_last)}"])
        began = time.perf_counter()
        result = train_recommender(cfg, catalogue=catalogue)
        rows.append((name, result.history[0]["triples_per_s"], time.perf_counter() - began))
    print(f"\n{catalogue.num_items} items, {len(catalogue.train_users)} training interactions, batch "
          f"{load_config(None, base).recommender.batch_size} per worker, {args.cpus} CPU(s)\n")
    print("| path | triples/s (epoch) | vs in-process, 1 thread | wall s (with start-up) |")
    print("|---|---:|---:|---:|")
    for name, rate, wall in rows:
        print(f"| {name} | {rate:.0f} | {rate / rows[0][1]:.2f}x | {wall:.0f} |")


if __name__ == "__main__":
    main()
