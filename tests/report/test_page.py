"""The run report: its numbers are the run summary's, it renders in a real headless browser (no console errors, no
failed requests, not blank), it is written as an object on the moto S3 server too, a run without oracle columns
renders without them, user pages are named by digests, and the history links earlier runs."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pyarrow as pa
import pytest

from fashiongen import storage
from fashiongen.cli import main
from fashiongen.config import load_config
from fashiongen.generation.summary import JUDGES
from fashiongen.lake import Lake, publish_run, write_designs
from fashiongen.lake.layout import id_key
from fashiongen.lake.paths import LakePaths
from fashiongen.report.page import ReportError, run_summary, sample_users, write_report, write_user_page
from fixtures import catalog_override, fake_designs, lake_at

USERS = [f"u{k:03d}" for k in range(8)]
CHROMIUM = shutil.which("chromium")


def _judged(run_date: str, users: list[str], seed: int = 0) -> pa.Table:
    """fake_designs with every judge's columns filled: a spread of wins and losses per judge."""
    table = fake_designs(run_date, users)
    rng = np.random.default_rng(seed)
    n = table.num_rows
    for name, value in (("score", rng.normal(1.0, 1.0, n)), ("oracle_score", rng.normal(0.0, 1.0, n)),
                        ("judge_score", rng.normal(0.2, 1.0, n)), ("oracle_category_best", rng.normal(0.5, 1.0, n))):
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(value, pa.float32()))
    for name in ("dataset_oracle_scores", "dataset_judge_scores"):
        lists = [[float(v) for v in rng.normal(0.0, 1.0, 2)] for _ in range(n)]
        table = table.set_column(table.schema.get_field_index(name), name, pa.array(lists, pa.list_(pa.float32())))
    return table


def _publish(lake: Lake | str, run_date: str, table: pa.Table) -> None:
    write_designs(table, lake, run_date)
    publish_run(lake, run_date, model_version="m1", config={"generation": {"steps": 10}},
                properties={"design.mode": "optimise", "judge_version": "dvbpr-judge"})


def _cfg(lake: Lake | str):
    lake = lake if isinstance(lake, Lake) else Lake(lake)
    return load_config(None, [*catalog_override(lake), f"data.catalogue_uri={lake.uri}/catalogue",
                              "generation.realism_sample=0"])


def _page(cfg, run_date: str) -> str:
    return storage.read_bytes(LakePaths.of(cfg).report(run_date)).decode()


def test_the_report_says_the_run_summarys_numbers(storage_root, tmp_path):
    """Local folder and moto S3: the page is one object under the lake; its figures are the summary's."""
    lake = lake_at(storage_root, tmp_path)
    _publish(lake, "2026-11-26", _judged("2026-11-26", USERS))
    cfg = _cfg(lake)
    uri = write_report(cfg, "2026-11-26", users=3)
    assert uri == LakePaths.of(cfg).report("2026-11-26") and storage.exists(uri)
    html = _page(cfg, "2026-11-26")
    summary = run_summary(cfg, "2026-11-26")
    embedded = json.loads(re.search(r'id="run-summary">(.*?)</script>', html, re.S).group(1).replace("<\\/", "</"))
    assert embedded == json.loads(summary.to_json())
    assert set(summary.verdicts) == set(JUDGES)
    for name, v in summary.verdicts.items():  # the judges' table row, as the console prints it
        row = re.search(rf"<td>{re.escape(name)}</td>(.*?)</tr>", html).group(1)
        cells = re.findall(r">([^<]*)</td>", row)
        assert cells[:4] == [f"{v['pairs']:.0f}", f"{v['win_share']:.1%}",
                             f"[{v['win_low']:.1%}, {v['win_high']:.1%}]", f"{v['mean_lift']:+.3f}"]
    assert f"<td>pairs designed</td><td>{summary.pairs_done}</td>" in html
    assert "dvbpr-judge" in html and "optimise" in html  # the manifest's properties
    assert html.count('<span class="tile design">') == 3 * 2 * 2  # 3 users x 2 categories x top-2 designs
    assert html.count("<svg") == 2 * len(JUDGES) + 1  # a histogram and per-category bars per judge, the history
    for user in USERS:
        assert (user in html) == (user in sample_users(pa.table({"user_id": USERS}), 3))


def test_a_run_without_oracle_or_judge_columns_renders_without_them(tmp_path):
    lake = str(tmp_path / "lake")
    _publish(lake, "2026-11-26", fake_designs("2026-11-26", USERS[:2]))
    cfg = _cfg(lake)
    write_report(cfg)  # the latest complete run
    html = _page(cfg, "2026-11-26")
    assert "learned scorer (climbed)" in html
    assert "true taste" not in html and "held-out scorer" not in html
    assert "Realism was not measured" in html and "No recommender evaluation" in html


def test_history_links_earlier_reports_and_plots_every_date(tmp_path):
    lake = str(tmp_path / "lake")
    cfg = _cfg(lake)
    for k, date in enumerate(["2026-11-25", "2026-11-26", "2026-11-27"]):
        _publish(lake, date, _judged(date, USERS[:4], seed=k))
        if date != "2026-11-26":  # the middle date never got a report
            write_report(cfg, date, users=1)
    html = _page(cfg, "2026-11-27")
    assert '<a href="../run_date=2026-11-25/index.html">2026-11-25</a>' in html
    assert "2026-11-26 (no report" in html and "<b>2026-11-27</b> (this run)" in html
    history = html[html.index("<h2>History</h2>"):]
    assert history.count("<polyline") == len(JUDGES)  # one line per judge over the three dates


def test_user_page_is_named_by_the_ids_digest_and_unknown_ids_are_clear_errors(tmp_path):
    lake = str(tmp_path / "lake")
    _publish(lake, "2026-11-26", _judged("2026-11-26", USERS[:2]))
    cfg = _cfg(lake)
    uri = write_user_page(cfg, "2026-11-26", "u000")
    assert uri.endswith(f"user-{id_key('user', 'u000')}.html") and "u000" not in uri.rsplit("/", 1)[1]
    assert 'href="index.html"' in storage.read_bytes(uri).decode()
    with pytest.raises(ReportError, match="no designs for user 'nobody'"):
        write_user_page(cfg, "2026-11-26", "nobody")
    with pytest.raises(ReportError, match="no published designs run 2026-01-01"):
        write_report(cfg, "2026-01-01")


def test_report_command_prints_where_the_page_is(tmp_path, capsys):
    lake = str(tmp_path / "lake")
    overrides = [f"lake_uri={lake}", f"data.catalogue_uri={lake}/catalogue", "generation.realism_sample=0"]
    assert main(["report", *overrides]) == 2
    assert "no published designs run" in capsys.readouterr().err
    _publish(lake, "2026-11-26", _judged("2026-11-26", USERS[:2]))
    assert main(["report", "--run-date", "2026-11-26", "--users", "1", *overrides]) == 0
    assert capsys.readouterr().out.strip() == f"report: {LakePaths(lake).report('2026-11-26')}"
    assert main(["report", "--user", "u001", *overrides]) == 0
    assert LakePaths(lake).user_report("2026-11-26", "u001") in capsys.readouterr().out


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/quickstart.sh test installs it)")
def test_the_report_renders_in_a_headless_browser(tmp_path):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    lake = str(tmp_path / "lake")
    _publish(lake, "2026-11-26", _judged("2026-11-26", USERS))
    cfg = _cfg(lake)
    page_path = write_report(cfg, "2026-11-26")
    problems: list[str] = []
    shot = tmp_path / "report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
                else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed request: {r.url}"))
        page.goto(f"file://{page_path}")
        page.wait_for_load_state("load")
        assert page.title() == "fashiongen designs run 2026-11-26"
        images = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    assert images and all(images)  # every embedded image decoded
    pixels = np.asarray(Image.open(shot).convert("L"), np.float32)
    assert pixels.shape[0] > 900 and pixels.std() > 10  # a long page with content, not a blank one
