"""`fashiongen simulate-day`: land a day of simulated shoppers' interactions for the nightly run."""
from __future__ import annotations

import argparse

from fashiongen.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=50, help="simulated shoppers active on the day")
    parser.add_argument("--picks", type=int, default=3, help="new interactions per active shopper")


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen import storage
    from fashiongen.data.contract import CatalogueError, load_catalogue
    from fashiongen.data.landing import simulate_day
    from fashiongen.data.oracle import load_truth
    from fashiongen.lake.layout import today_utc, validate_run_date
    from fashiongen.lake.paths import LakePaths

    run_date = validate_run_date(cfg.run_date or today_utc())
    catalogue = load_catalogue(cfg.data.catalogue_uri, with_images=False)
    if not catalogue.simulated:
        raise CatalogueError(f"{cfg.data.catalogue_uri!r} is not a simulated catalogue: its interactions come from "
                             "real shoppers; land them under the landing zone instead")
    table = simulate_day(catalogue, load_truth(cfg.data.catalogue_uri, catalogue), run_date, args.users,
                         args.picks, cfg.simulation.seed)
    uri = storage.join(LakePaths.of(cfg).landing_day(run_date), "simulated.parquet")
    storage.write_table(table, uri)
    print(f"landed {table.num_rows} simulated interactions of {args.users} shoppers for {run_date}: {uri}")
    return 0
