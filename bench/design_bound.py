"""The design bound (fashiongen/evaluation/design_bound.py) of a simulated catalogue at several activity levels.

    python bench/design_bound.py [--config configs/default.yaml] [--extra 7,22,60] [--out /tmp/fashiongen-bound]

For each `simulation.mean_extra_interactions` in --extra (the default's 7 gives ~10 training interactions a user,
22 ~25, 60 ~63) it builds the config's catalogue (`prepare`, the demo's 3,200 items and 600 shoppers unless
overridden) and prints one Markdown row per estimator: the share of every (user, category) pair whose perfect design
(a perfect Φ and a perfect generator) beats the best of its 3 retrieved real items and the truly best real item
under the true taste, with 95% bootstrap intervals. "bound" is the higher estimator: what a run's true-taste
verdict is read against.
"""
from __future__ import annotations

import argparse
import time

from fashiongen.config import load_config
from fashiongen.data.prepare import prepare_catalogue
from fashiongen.evaluation.design_bound import catalogue_bound


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/default.yaml")
    parser.add_argument("--extra", default="7,22,60", help="simulation.mean_extra_interactions values")
    parser.add_argument("--out", default="/tmp/fashiongen-bound")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args()
    print("| mean extra | train interactions a user | estimator | pairs | beats best retrieved (95% CI) "
          "| beats truly best (95% CI) | seconds |")
    print("|---:|---:|---|---:|---|---|---:|")
    for extra in [float(x) for x in args.extra.split(",")]:
        started = time.perf_counter()
        cfg = load_config(args.config, [*args.overrides, f"simulation.mean_extra_interactions={extra:g}",
                                        f"data.catalogue_uri={args.out}/extra-{extra:g}"])
        prepare_catalogue(cfg)
        table = catalogue_bound(cfg.data.catalogue_uri)
        seconds = time.perf_counter() - started
        for name, row in table.items():
            label = f"**bound** ({row['estimator']})" if name == "bound" else name
            print(f"| {extra:g} | {row['train interactions a user']:.1f} | {label} | {row['pairs']:.0f} | "
                  f"{row['beats retrieved']:.1%} ({row['beats retrieved low']:.1%}-{row['beats retrieved high']:.1%}) | "
                  f"{row['beats truly best']:.1%} ({row['beats truly best low']:.1%}-{row['beats truly best high']:.1%}) "
                  f"| {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
