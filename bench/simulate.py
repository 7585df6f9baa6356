"""Simulator at scale: N users over all 70k Fashion-MNIST items (default 100k users).

    python bench/simulate.py [--users 100000] [--ceiling-users 0] [--out /tmp/fashiongen-bench-sim]

Prints build time per stage, peak memory (ru_maxrss), the oracle AUC ceiling and category-only AUC on the
test split (all users unless --ceiling-users), and the catalogue size on disk.
"""
from __future__ import annotations

import argparse
import dataclasses
import resource
import shutil
import time
from pathlib import Path

from fashiongen.config import SimulationConfig
from fashiongen.data.contract import load_catalogue, write_catalogue
from fashiongen.data.fashion_mnist import items_table, load_fashion_mnist
from fashiongen.data.oracle import load_truth, oracle_auc, write_truth
from fashiongen.data.simulate import simulate_shoppers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--ceiling-users", type=int, default=0, help="0 = every user")
    parser.add_argument("--fashion-mnist-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--out", default="/tmp/fashiongen-bench-sim")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    rows = []

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        rows.append((name, time.perf_counter() - start))
        return out

    image_set = timed("load Fashion-MNIST", lambda: load_fashion_mnist(args.fashion_mnist_dir))
    cfg = dataclasses.replace(SimulationConfig(), num_users=args.users)
    sim = timed("simulate shoppers", lambda: simulate_shoppers(
        image_set.images, image_set.item_ids, image_set.item_category, image_set.categories, cfg))
    items = timed("encode PNG items", lambda: items_table(image_set))
    timed("write truth", lambda: write_truth(args.out, sim.truth))
    meta = timed("validate + split + write", lambda: write_catalogue(
        args.out, items, sim.interactions, {"source": "fashion_mnist", "simulated": True}, categories=image_set.categories))
    catalogue = timed("load catalogue (no images)", lambda: load_catalogue(args.out, with_images=False))
    truth = timed("load truth", lambda: load_truth(args.out, catalogue))
    ceiling = timed("oracle AUC ceiling", lambda: oracle_auc(catalogue, truth, max_users=args.ceiling_users))
    category = timed("category-only AUC", lambda: oracle_auc(catalogue, truth, score="category",
                                                             max_users=args.ceiling_users))
    per_user = sim.interactions.to_pandas().groupby("user_id").size()
    size = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())

    print(f"| stage | seconds |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} |")
    simulate_s = next(s for n, s in rows if n == "simulate shoppers")
    c = meta["counts"]
    print(f"\nusers {c['users']}, items {c['items']}, interactions {c['interactions']} (train {c['train']}), "
          f"cold items {c['cold_items']}")
    print(f"interactions per user: min {per_user.min()}, median {per_user.median():.0f}, "
          f"p99 {per_user.quantile(0.99):.0f}, max {per_user.max()}")
    print(f"simulate: {simulate_s:.1f} s for {args.users} users x {c['items']} items")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    users = args.ceiling_users or c["users"]
    print(f"oracle AUC ceiling (test, {users} users) {ceiling:.4f}; category affinity alone {category:.4f}")
    print(f"catalogue on disk {size / 2**20:.1f} MiB ({args.out})")


if __name__ == "__main__":
    main()
