"""The run report: one self-contained HTML page per designs run, written under the lake beside the run.

    write_report(cfg, "2026-11-26")            # <lake>/reports/run_date=2026-11-26/index.html
    write_user_page(cfg, "2026-11-26", "u00042")

What a merchandiser opens instead of the logs: the run's summary (pairs, failures by reason, model versions,
timings), the judges' table, realism, the recommender table, the lift distributions per judge and per category,
contact sheets of a stable sample of users (their catalogue top-k beside the designs) and the nightly history.
Images are embedded as data URIs and the charts are inline SVG: no script, no network, the page is one file that
reads the same from a laptop or an S3 console. The figures are the run summary's (`generation.summary`), saved
when the run was published, so the page and the console say the same numbers.
"""
from __future__ import annotations

import base64
import datetime as dt
import math
from html import escape
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fashiongen import storage
from fashiongen.config import Config
from fashiongen.errors import FashiongenError
from fashiongen.evaluation.judges import INTERVAL_HEADER, format_interval
from fashiongen.evaluation.recommender_eval import METRICS, auc_cell
from fashiongen.generation.summary import (JUDGES, SUMMARY_COLUMNS, RunSummary, format_bound, format_composition,
                                          judge_verdicts, load_summary, pair_lifts, pair_table, save_summary,
                                          summarise)
from fashiongen.lake import reader
from fashiongen.lake.layout import id_key, validate_run_date
from fashiongen.lake.paths import LakePaths
from fashiongen.lake.table import Lake
from fashiongen.report import charts

SAMPLE_USERS = 6  # users with a contact sheet on the run's page
STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px} h2{font-size:18px;border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:3px 8px;font-size:13px}
th{background:#f3f3f3;text-align:left} td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:12px} .tile{display:inline-block;margin:2px;text-align:center;font-size:11px}
.tile img{width:84px;height:84px;image-rendering:pixelated;border:1px solid #ccc;display:block}
.real img{border-color:#888} .design img{border-color:#2ca02c} .note{color:#666;font-size:12px}
"""


class ReportError(FashiongenError):
    """A report that cannot be written (no such run); the message says what exists."""


def _resolve(cfg: Config, run_date: str | None) -> str:
    if run_date:
        date = validate_run_date(run_date)
        if date not in reader.list_complete_runs(Lake.of(cfg)):
            raise ReportError(f"no published designs run {date} in {cfg.lake_uri} (complete runs: "
                              f"{reader.list_complete_runs(Lake.of(cfg)) or 'none'}; see `fashiongen lake runs`)")
        return date
    date = reader.latest_complete_run(Lake.of(cfg))
    if date is None:
        raise ReportError(f"no published designs run in {cfg.lake_uri}: run `fashiongen generate` first")
    return date


def run_summary(cfg: Config, run_date: str) -> RunSummary:
    """The summary saved at publish time; computed (and saved) for runs published before summaries were kept."""
    summary = load_summary(cfg, run_date)
    if summary is None:
        summary = summarise(RunSummary(run_date=run_date, action="skip", run_uri=Lake.of(cfg).run_label(run_date)),
                            cfg, run_date)
        save_summary(cfg, summary)
    return summary


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return format(value, fmt)


def _table(head: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    out = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{escape(c)}</td>' if k >= numeric_from else f"<td>{escape(c)}</td>"
                                     for k, c in enumerate(row)) + "</tr>")
    return "".join(out) + "</table>"


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _summary_section(summary: RunSummary, record: dict, timings: dict[str, float] | None) -> str:
    props = record.get("properties") or {}
    rows = [["run date", summary.run_date], ["pairs planned", str(summary.pairs_total)],
            ["pairs designed", str(summary.pairs_done)], ["pairs failed", str(summary.pairs_failed)],
            ["rows", str(record.get("rows", ""))], ["plan", summary.plan],
            ["design seconds (last attempt)", f"{summary.seconds:.1f} s ({summary.pairs_per_second:.2f} pairs/s)"],
            ["model version (recommender+generator)", str(record.get("model_version", ""))],
            ["held-out judge version", props.get("judge_version") or "none"],
            ["design mode", props.get("design.mode", "")], ["config digest", str(record.get("config_digest", ""))],
            ["published at", str(record.get("created_at", ""))]]
    html = _table(["", "value"], rows, numeric_from=2)
    if summary.failure_reasons:
        html += "<h3>Failures by reason</h3>" + _table(
            ["reason", "pairs"], [[r, str(n)] for r, n in sorted(summary.failure_reasons.items())])
    if timings:
        html += "<h3>Timings</h3>" + _table(["step", "seconds"], [[k, f"{v:.0f}"] for k, v in timings.items()])
    return html


def _judges_section(summary: RunSummary) -> str:
    if not summary.verdicts:
        return '<p class="note">No pair was judged.</p>'
    rows = [[name, _num(v.get("pairs"), ".0f"), _num(v.get("win_share"), ".1%"), format_interval(v),
             _num(v.get("mean_lift"), "+.3f"),
             _num(v.get("median_lift"), "+.3f"), _num(v.get("relative_lift"), "+.1%"), _num(v.get("p_sign"), ".2g"),
             _num(v.get("p_permutation"), ".2g")] for name, v in summary.verdicts.items() if v]
    table = _table(["judge", "pairs", "design wins", INTERVAL_HEADER, "mean lift", "median lift", "lift / best real", "p (sign)",
                    "p (perm.)"], rows)
    made_of = f'<p>{escape(format_composition(summary.composition))}.</p>' if summary.composition else ""
    bound = f'<p>{escape(format_bound(summary.bound))}.</p>' if summary.bound else ""
    return ('<p>Best design of each pair against the best real item of its category (the best retrieved one, or the '
            'truly best one for the shopper), each scored by the same judge.</p>' + table + bound + made_of)


def _realism_section(realism: dict) -> str:
    if not realism:
        return '<p class="note">Realism was not measured for this run (generation.realism_sample=0).</p>'
    d, p = realism["designs"], realism["plain"]
    rows = [[name, _num(q["fid"], ".2f"), _num(q["kid"], ".4f"), _num(q["class_consistency"], ".1%"),
             str(q["n_fake"])] for name, q in (("designs", d), ("plain samples", p))]
    note = (f'<p class="note">FID ratio {realism["fid_ratio"]:.2f}; against {d["n_real"]} real items in the '
            "catalogue classifier's feature space.")
    if d["n_fake"] < 200:
        note += f" Only {d['n_fake']} designs: FID/KID are noisy below a few hundred; read class consistency."
    return _table(["images", "FID", "KID", "class consistency", "n"], rows) + note + "</p>"


def _recommender_section(cfg: Config) -> str:
    uri = storage.join(LakePaths.of(cfg).evaluation("test"), "results.parquet")
    if not storage.exists(uri):
        return '<p class="note">No recommender evaluation in this lake (`fashiongen evaluate`).</p>'
    rows = storage.read_table(uri).to_pylist()
    taste = any(r.get("taste_within") is not None for r in rows)
    head = ["model", "AUC full [95% CI]", "AUC sampled-100 [95% CI]", "AUC cold [95% CI]", "users (cold)"]
    head += ["taste within", "taste overall"] if taste else []
    body = []
    for r in rows:
        cells = [r["model"], *(auc_cell(r, m) for m in METRICS), f"{r['users']} ({r['cold_users']})"]
        if taste:
            cells += [_num(r.get("taste_within"), ".2f"), _num(r.get("taste_overall"), ".2f")]
        body.append(cells)
    return "<p>Test split, 95% bootstrap intervals.</p>" + _table(head, body)


def _lift_section(lifts: dict[str, pa.Table]) -> str:
    if not lifts:
        return '<p class="note">No lifts to plot.</p>'
    out = ['<div class="charts">']
    for name, table in lifts.items():
        out.append(charts.histogram(table.column("lift").to_pylist(), f"{name}: best design - best real"))
    out.append("</div><div class=\"charts\">")
    for name, table in lifts.items():
        means = table.group_by("category").aggregate([("lift", "mean")]).sort_by("category")
        out.append(charts.bars(means.column("category").to_pylist(), means.column("lift_mean").to_pylist(),
                               f"{name}: mean lift per category"))
    return "".join(out) + "</div>"


def _history(cfg: Config) -> tuple[list[str], dict[str, list[float]]]:
    """Complete run dates (oldest first) and each judge's win share on each."""
    dates = reader.list_complete_runs(Lake.of(cfg))
    series: dict[str, list[float]] = {name: [] for name in JUDGES}
    for date in dates:
        saved = load_summary(cfg, date)
        verdicts = saved.verdicts if saved is not None else judge_verdicts(
            reader.scan_run(Lake.of(cfg), date, columns=SUMMARY_COLUMNS))
        for name in JUDGES:
            series[name].append((verdicts.get(name) or {}).get("win_share", math.nan))
    return dates, {name: values for name, values in series.items() if any(math.isfinite(v) for v in values)}


def _history_section(cfg: Config, current: str) -> str:
    dates, series = _history(cfg)
    paths = LakePaths.of(cfg)
    links = []
    for date in reversed(dates):
        if date == current:
            links.append(f"<li><b>{escape(date)}</b> (this run)</li>")
        elif storage.exists(paths.report(date)):
            links.append(f'<li><a href="../run_date={escape(date)}/index.html">{escape(date)}</a></li>')
        else:
            links.append(f"<li>{escape(date)} (no report: `fashiongen report {escape(date)}`)</li>")
    return (charts.lines(dates, series, "design win share per judge over runs", (0.0, 1.0))
            + "<ul>" + "".join(links) + "</ul>")


def _catalogue_images(cfg: Config, item_ids: set[str]) -> dict[str, bytes]:
    """PNG bytes of the given catalogue items (empty when the catalogue is not readable)."""
    uri = storage.join(cfg.data.catalogue_uri, "items.parquet")
    if not item_ids or not storage.exists(uri):
        return {}
    items = storage.read_table(uri, columns=["item_id", "image_png"])
    items = items.filter(pc.is_in(items.column("item_id"), value_set=pa.array(sorted(item_ids), pa.string())))
    return dict(zip(items.column("item_id").to_pylist(), items.column("image_png").to_pylist()))


def _tile(png: bytes | None, kind: str, caption: str) -> str:
    img = f'<img alt="{escape(kind)}" src="{_png_uri(png)}">' if png else "<div>(no image)</div>"
    return f'<span class="tile {kind}">{img}{escape(caption)}</span>'


def _score_caption(score: float | None, truth: float | None, judge: float | None) -> str:
    parts = [f"s {score:+.2f}" if score is not None else "s n/a"]
    if truth is not None:
        parts.append(f"t {truth:+.2f}")
    if judge is not None:
        parts.append(f"j {judge:+.2f}")
    return " ".join(parts)


def _user_sheet(cfg: Config, run_date: str, user: str, rows: pa.Table | None = None) -> str:
    """One user's contact sheet; `rows`: their designs when already read (else read here)."""
    rows = reader.designs_for_user(Lake.of(cfg), user, run_date) if rows is None else rows
    if rows.num_rows == 0:
        raise ReportError(f"no designs for user {user!r} in run {run_date} of {cfg.lake_uri} "
                          "(check the id with `fashiongen lake show`)")
    rows = rows.sort_by([("category", "ascending"), ("rank", "ascending")]).to_pylist()
    real = _catalogue_images(cfg, {i for r in rows for i in r["dataset_top_item_ids"]})
    legend = ["s = learned scorer"]
    legend += ["t = true taste (simulated shoppers)"] if any(r["oracle_score"] is not None for r in rows) else []
    legend += ["j = held-out scorer"] if any(r["judge_score"] is not None for r in rows) else []
    out = [f'<h3>user {escape(user)}</h3><p class="note">captions: {", ".join(legend)}</p><table><tr>'
           "<th>category</th><th>catalogue top-k (real items)</th><th>designs</th></tr>"]
    for category in sorted({r["category"] for r in rows}):
        part = [r for r in rows if r["category"] == category]
        top = part[0]
        truths = top["dataset_oracle_scores"] or [None] * len(top["dataset_top_item_ids"])
        judges = top["dataset_judge_scores"] or [None] * len(top["dataset_top_item_ids"])
        real_tiles = "".join(_tile(real.get(i), "real", _score_caption(s, t, j)) for i, s, t, j in
                             zip(top["dataset_top_item_ids"], top["dataset_top_scores"], truths, judges))
        design_tiles = "".join(_tile(r["image_png"], "design", _score_caption(r["score"], r["oracle_score"],
                                                                               r["judge_score"])) for r in part)
        out.append(f"<tr><td>{escape(category)}</td><td>{real_tiles}</td><td>{design_tiles}</td></tr>")
    return "".join(out) + "</table>"


def sample_users(run: pa.Table, n: int) -> list[str]:
    """A stable sample of the run's users: the n whose id digests sort first (the same users every rerun)."""
    users = set(run.column("user_id").to_pylist())
    return sorted(users, key=lambda u: id_key("user", u))[:n]


def _page(title: str, sections: list[tuple[str, str]], summary: RunSummary | None = None) -> str:
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(f"<h2>{escape(name)}</h2>{html}" for name, html in sections)
    data = ""
    if summary is not None:  # the figures behind the page, machine-readable (JSON is inert: no script runs)
        data = '<script type="application/json" id="run-summary">' + summary.to_json().decode().replace("</", "<\\/") \
            + "</script>"
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<link rel="icon" href="data:,"><style>{STYLE}</style></head><body><h1>{escape(title)}</h1>'
            f'<p class="note">written {generated} by fashiongen report</p>{body}{data}</body></html>')


def write_report(cfg: Config, run_date: str | None = None, *, users: int = SAMPLE_USERS,
                 timings: dict[str, float] | None = None) -> str:
    """Write the run's page (default: the latest complete run) and return its URI."""
    date = _resolve(cfg, run_date)
    summary = run_summary(cfg, date)
    record = reader.run_info(Lake.of(cfg), date)
    run = reader.read_run(Lake.of(cfg), date, columns=SUMMARY_COLUMNS)
    sampled = sample_users(run, users)
    designs = reader.read_run(Lake.of(cfg), date, user_id=sampled)  # one scan for every sampled user's images
    sheets = "".join(_user_sheet(cfg, date, user, designs.filter(pc.equal(designs.column("user_id"), user)))
                     for user in sampled)
    sections = [("Run", _summary_section(summary, record, timings)),
                ("Judges", _judges_section(summary)),
                ("Realism", _realism_section(summary.realism)),
                ("Recommenders", _recommender_section(cfg)),
                ("Lift distributions", _lift_section(pair_lifts(pair_table(run.to_batches())))),
                (f"Contact sheets ({min(users, len(set(run.column('user_id').to_pylist())))} users, a stable sample)",
                 sheets or '<p class="note">no users</p>'),
                ("History", _history_section(cfg, date))]
    uri = LakePaths.of(cfg).report(date)
    storage.write_bytes(uri, _page(f"fashiongen designs run {date}", sections, summary).encode())
    return uri


def write_user_page(cfg: Config, run_date: str | None, user: str) -> str:
    """Write one user's page of a run (their contact sheet for every category) and return its URI."""
    date = _resolve(cfg, run_date)
    sections = [("Designs", _user_sheet(cfg, date, user)),
                ("Run", f'<p><a href="index.html">the run\'s report</a> ({escape(date)})</p>')]
    uri = LakePaths.of(cfg).user_report(date, user)
    storage.write_bytes(uri, _page(f"fashiongen designs for user {user}, run {date}", sections).encode())
    return uri


