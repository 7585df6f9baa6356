"""Recommender benchmark on Fashion-MNIST with simulated shoppers: PopRank, BPR-MF, VBPR, DVBPR and the oracle ceiling.

    python bench/recommender.py --items 10000 --users 1000 --dvbpr-epochs 4

Builds (or reuses) the catalogue with `fashiongen prepare`'s code, trains every model through
`train_recommender` (DVBPR with Ray Train, 1 worker), evaluates on the test split (full, sampled-100 and cold AUC with
95% bootstrap intervals) and prints one markdown table. Then measures DVBPR training throughput at batch 128 with 1
and 2 Ray workers (one epoch each, fresh runs). Prints tables; asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000, help="Fashion-MNIST images used (0 = all 70,000)")
    parser.add_argument("--users", type=int, default=1000, help="simulated shoppers")
    parser.add_argument("--dvbpr-epochs", type=int, default=4)
    parser.add_argument("--dvbpr-lr", type=float, default=1e-3, help="the paper's 1e-4 needs far more epochs")
    parser.add_argument("--baseline-epochs", type=int, default=20)
    parser.add_argument("--workdir", default=None, help="where the catalogue and lake go (default: a temp folder)")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    import ray
    import torch

    from fashiongen.config import load_config
    from fashiongen.data.contract import load_catalogue
    from fashiongen.data.prepare import prepare_catalogue
    from fashiongen.evaluation.recommender_eval import evaluate_recommender, markdown_table, oracle_row
    from fashiongen.models.contract import load_recommender
    from fashiongen.training.recommender import train_recommender

    torch.set_num_threads(1)
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-rec-")
    base = [f"data.catalogue_uri={workdir}/catalogue", f"lake_uri={workdir}/lake", f"data.max_items={args.items}",
            f"simulation.num_users={args.users}", f"train.storage_path={workdir}/train",
            f"recommender.epochs={args.dvbpr_epochs}", f"recommender.lr={args.dvbpr_lr}",
            f"recommender.baseline_epochs={args.baseline_epochs}", "train.num_workers=1"]
    began = time.perf_counter()
    meta, _ = prepare_catalogue(load_config(None, base))
    counts = meta["counts"]
    print(f"catalogue: Fashion-MNIST {counts['items']} items, {counts['users']} simulated users, "
          f"{counts['train']} train interactions, {counts['cold_items']} cold items ({time.perf_counter() - began:.0f}s)")
    catalogue = load_catalogue(f"{workdir}/catalogue")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})

    rows = []
    for kind in ("poprank", "bprmf", "vbpr", "dvbpr"):
        cfg = load_config(None, base + [f"recommender.model={kind}"])
        result = train_recommender(cfg, catalogue=catalogue)
        epochs = [m for m in result.history if "seconds" in m]
        row, _ = evaluate_recommender(load_recommender(result.model_uri), catalogue, seed=0)
        row["epochs"] = str(result.epochs)
        row["train s/epoch"] = sum(m["seconds"] for m in epochs) / max(len(epochs), 1)
        print(f"  {kind}: trained {result.epochs} epoch(s) in {result.train_seconds:.0f}s, "
              f"full AUC {row['auc_full']:.4f}", flush=True)
        rows.append(row)
    oracle, _ = oracle_row(f"{workdir}/catalogue", catalogue, seed=0)
    oracle.update({"epochs": "-", "train s/epoch": "-"})
    rows.append(oracle)
    print()
    print(markdown_table(rows, extra=("epochs", "train s/epoch")))
    ceiling = oracle["auc_full"]
    dvbpr = next(r for r in rows if r["model"] == "dvbpr")
    print(f"\nDVBPR full AUC / oracle ceiling = {dvbpr['auc_full'] / ceiling:.3f}")

    if not args.skip_throughput:
        print("\n| DVBPR training, batch 128 per worker | workers | triples/s | images/s | s/epoch |\n|---|---|---|---|---|")
        for workers in (1, 2):
            cfg = load_config(None, base + ["recommender.epochs=1", f"train.num_workers={workers}",
                                            f"train.run_name=throughput-{workers}", "recommender.eval_users=1",
                                            f"recommender.model_uri={workdir}/throughput-{workers}.pt"])
            shutil.rmtree(f"{workdir}/train/throughput-{workers}", ignore_errors=True)
            m = train_recommender(cfg, catalogue=catalogue).history[-1]
            print(f"| Fashion-MNIST 28 px, small CNN | {workers} | {m['triples_per_s']:.0f} | "
                  f"{2 * m['triples_per_s']:.0f} | {m['seconds']:.1f} |", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
