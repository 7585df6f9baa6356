"""`fashiongen lake`: read the designs table as a user would — published runs, one user's designs, a contact sheet —
and import a lake written before the Iceberg table.

    fashiongen lake runs
    fashiongen lake show --user u000042 [--run-date 2026-11-26]
    fashiongen lake sheet --user u000042 [--out sheet.png]
    fashiongen lake migrate
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fashiongen.config import Config
from fashiongen.errors import FashiongenError

if TYPE_CHECKING:
    from fashiongen.lake.table import Lake


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["runs", "show", "sheet", "migrate"], help="what to do")
    parser.add_argument("--user", default=None, help="user_id (show, sheet)")
    parser.add_argument("--run-date", default=None, help="a published run's date (default: the latest)")
    parser.add_argument("--out", default=None, help="sheet: output PNG path or URI (default: <lake>/pictures/...)")


def _runs(lake: "Lake") -> int:
    from fashiongen.lake import migrate, reader

    dates = reader.list_complete_runs(lake)
    pending = migrate.pending_migration(lake)
    if not dates:
        print(f"no published runs in {lake.table_name} of {lake.uri} (run `fashiongen generate` first)")
    else:
        print(f"table {lake.table_name}\n\n| run_date | rows | pairs | model_version | created_at | snapshot |\n"
              "|---|---|---|---|---|---|")
    for date in dates:
        r = reader.run_info(lake, date)
        print(f"| {date} | {r['rows']} | {r['pairs']} | {r['model_version']} | {r['created_at']} | "
              f"{r['snapshot_id']} |")
    if pending:
        print(f"{len(pending)} run(s) in the Hive layout are not in the table ({', '.join(pending[:3])}"
              f"{', ...' if len(pending) > 3 else ''}): import them with `fashiongen lake migrate`")
    return 0


def _migrate(lake: "Lake") -> int:
    from fashiongen.lake import migrate

    report = migrate.migrate(lake)
    print(f"migrated {len(report.migrated)} run(s) into {lake.table_name}: {', '.join(report.migrated) or 'none'}; "
          f"already in the table: {len(report.already)}")
    for name, why in report.skipped.items():
        print(f"skipped designs/{name}: {why}")
    return 0


def _user_rows(lake: "Lake", user: str | None, run_date: str | None):
    from fashiongen.lake import reader

    if not user:
        raise FashiongenError("--user is required for this action (e.g. --user u000042)")
    table = reader.designs_for_user(lake, user, run_date)
    if table.num_rows == 0:
        raise FashiongenError(f"no designs for user {user!r} in run {run_date or 'latest'} of {lake.uri} "
                              "(check the id with `fashiongen lake runs` and the generation summary)")
    return table.sort_by([("category", "ascending"), ("rank", "ascending")])


def _show(lake: "Lake", user: str | None, run_date: str | None) -> int:
    rows = _user_rows(lake, user, run_date).to_pylist()
    print(f"designs of {user} (run {rows[0]['run_date']}, model {rows[0]['model_version']})")
    print("| category | rank | score | realism | lift | oracle | best real items (score) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        real = ", ".join(f"{i} ({s:.2f})" for i, s in zip(r["dataset_top_item_ids"], r["dataset_top_scores"]))
        oracle = "" if r["oracle_score"] is None else f"{r['oracle_score']:.2f}"
        print(f"| {r['category']} | {r['rank']} | {r['score']:.3f} | {r['realism']:.3f} | {r['lift']:+.3f} | "
              f"{oracle} | {real} |")
    return 0


def _sheet(cfg: Config, user: str | None, run_date: str | None, out: str | None) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from fashiongen import storage
    from fashiongen.data.images import decode_image
    from fashiongen.generation.pictures import SheetRow, contact_sheet, save_png
    from fashiongen.lake.paths import LakePaths

    from fashiongen.lake.table import Lake

    rows = _user_rows(Lake.of(cfg), user, run_date)
    wanted = sorted({i for ids in rows.column("dataset_top_item_ids").to_pylist() for i in ids})
    items = storage.read_table(storage.join(cfg.data.catalogue_uri, "items.parquet"), columns=["item_id", "image_png"])
    items = items.filter(pc.is_in(items.column("item_id"), value_set=pa.array(wanted, pa.string())))
    real = {i: decode_image(png) for i, png in zip(items.column("item_id").to_pylist(),
                                                  items.column("image_png").to_pylist())}
    sheet_rows = []
    for category in sorted(set(rows.column("category").to_pylist())):
        part = rows.filter(pc.equal(rows.column("category"), category)).to_pylist()
        top = part[0]
        oracle_real = top["dataset_oracle_scores"]
        sheet_rows.append(SheetRow(
            label=category,
            real_images=np.stack([real[i] for i in top["dataset_top_item_ids"]]) if top["dataset_top_item_ids"]
            else np.zeros((0, 1, 1, 1), np.uint8),
            real_scores=np.asarray(top["dataset_top_scores"], np.float32),
            generated_images=np.stack([decode_image(r["image_png"]) for r in part]),
            generated_scores=np.asarray([r["score"] for r in part], np.float32),
            real_truth=None if oracle_real is None else np.asarray(oracle_real, np.float32),
            generated_truth=None if part[0]["oracle_score"] is None
            else np.asarray([r["oracle_score"] for r in part], np.float32)))
    date = rows.column("run_date")[0].as_py()
    out = out or LakePaths.of(cfg).sheet(date, str(user))
    save_png(contact_sheet(f"user {user} - run {date}: top real items | top designs", sheet_rows), out)
    print(f"contact sheet: {out}")
    return 0


def run(cfg: Config, args: argparse.Namespace) -> int:
    from fashiongen.lake.table import Lake

    if args.action == "runs":
        return _runs(Lake.of(cfg))
    if args.action == "migrate":
        return _migrate(Lake.of(cfg))
    if args.action == "show":
        return _show(Lake.of(cfg), args.user, args.run_date)
    return _sheet(cfg, args.user, args.run_date, args.out)
