"""The nightly run submitted as a real Ray job: `ray start --head` on 127.0.0.1, `ray job submit --submission-id
nightly-<date>`, outputs checked in the lake, the same date refused or a no-op, and that head stopped at the end."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pytest

from fashiongen import storage
from fashiongen.config import load_config
from fashiongen.lake import reader
from fashiongen.lake.paths import LakePaths
from fixtures import REPO, fmnist_catalogue_with_models, needs_fmnist

pytestmark = [needs_fmnist, pytest.mark.slow]  # `ray start --head` and four `ray job submit`s
NUM_USERS = 6
DAY1, DAY2 = "2026-11-25", "2026-11-26"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """A simulated Fashion-MNIST catalogue, real (untrained) DVBPR + LSGAN and the category classifiers where the
    pipeline would put them."""
    from fashiongen.lake.paths import LakePaths

    root = tmp_path_factory.mktemp("nightly")
    overrides = [f"lake_uri={root}/lake", f"data.catalogue_uri={root}/lake/catalogue", "data.max_items=300",
                 f"simulation.num_users={NUM_USERS}", "recommender.k=8", "design.restarts=2",
                 "design.steps=2", "design.top_k=2", "design.batch_pairs=16", "nightly.refresh_steps=20",
                 "nightly.max_auc_drop=1"]
    cfg = load_config(None, overrides)
    paths = LakePaths.of(cfg)
    catalogue = fmnist_catalogue_with_models(cfg, paths.recommender_model(cfg.recommender.model),
                                             paths.generator_model(), cfg.lake_uri)
    return cfg, overrides, list(catalogue.user_ids)


AGENT_PORTS = ("dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
               "metrics-export-port", "ray-client-server-port")


@pytest.fixture(scope="module")
def ray_head():
    """A Ray head started by the CLI, as on a cluster (`ray start --head --block`, in a process group of its own);
    stopped however the tests end by terminating that command, which shuts down its node's processes. Never
    `ray stop`: it would stop every Ray on the machine, the session's shared one (conftest's ray_local) too."""
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    # Not under pytest's basetemp: a worker's (…/pytest-N/popen-gw1/…) makes Ray's unix sockets longer than AF_UNIX's
    # 107 bytes, and the head's dashboard then dies at start ("Module MetricsHead failed to start").
    temp_dir = Path(tempfile.mkdtemp(prefix="fg-ray-"))
    dashboard = _free_port()
    agent_ports = {name: _free_port() for name in AGENT_PORTS}
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "RAY_DATA_DISABLE_PROGRESS_BARS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    log = (temp_dir / "ray-start.log").open("w")
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                             f"--port={_free_port()}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={dashboard}", "--num-cpus=2", f"--temp-dir={temp_dir}",
                             "--disable-usage-stats",
                             # the agents' default ports are taken by the session's shared Ray (conftest's
                             # ray_local): on them this head's job agent never comes up ("No available agent")
                             *(f"--{name}={port}" for name, port in agent_ports.items())], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_agent(head, agent_ports["dashboard-agent-listen-port"], temp_dir / "ray-start.log")
        yield ray_bin, address, env
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)  # the node's processes share the group: each gets it at once
            head.wait(timeout=5)
        except ProcessLookupError:  # a head that failed to start: its whole group has exited already
            pass
        except subprocess.TimeoutExpired:  # `--block` then stops them one by one, ~30 s: nothing here needs that
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_agent(head: subprocess.Popen, agent_port: int, log: Path) -> None:
    """Return once the head node's dashboard agent (the job agent) answers its health check, which it serves from
    just before it registers its address with GCS; the job head waits for that registration on every submit.
    A failed start ends this wait: the agent shares fate with the raylet, and so with `ray start --block`."""
    health = f"http://127.0.0.1:{agent_port}/api/healthz"
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never through a proxy
    while True:
        assert head.poll() is None, f"`ray start --head` exited with {head.returncode}: {log.read_text()[-2000:]}"
        try:
            with direct.open(health, timeout=10) as answer:
                if answer.status == 200:
                    return
        except OSError:  # not listening yet (refused), or up with raylet/GCS not healthy yet (HTTP 503)
            pass
        time.sleep(0.5)


def _submit(ray_head, submission_id: str, *args: str) -> subprocess.CompletedProcess:
    ray_bin, address, env = ray_head
    return subprocess.run([ray_bin, "job", "submit", "--address", address, "--submission-id", submission_id,
                           "--working-dir", str(REPO), "--", "python", "jobs/nightly.py", *args],
                          env=env, capture_output=True, text=True, timeout=600, cwd=REPO)


def test_nightly_jobs_design_changed_users_and_a_date_runs_once(lake, ray_head):
    from fashiongen.commands import simulate_day

    cfg, overrides, user_ids = lake
    first = _submit(ray_head, f"nightly-{DAY1}", *overrides, f"run_date={DAY1}")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert reader.list_complete_runs(cfg.lake_uri) == [DAY1]
    categories = len(json.loads(storage.read_bytes(f"{cfg.data.catalogue_uri}/catalogue.json"))["categories"])
    assert set(reader.read_run(cfg.lake_uri, DAY1).column("user_id").to_pylist()) == set(user_ids)  # first run: all

    # The day's interactions land: two shoppers come back; a row for an unknown user is quarantined, not fatal.
    day_cfg = load_config(None, [*overrides, f"run_date={DAY2}"])
    assert simulate_day.run(day_cfg, _Args(users=2, picks=3)) == 0
    landed = storage.read_table(LakePaths.of(day_cfg).landing_day(DAY2))
    storage.write_table(pa.table({"user_id": ["stranger"], "item_id": landed.column("item_id").to_pylist()[:1],
                                  "ts": landed.column("ts").slice(0, 1)}),
                        storage.join(LakePaths.of(day_cfg).landing_day(DAY2), "upstream.parquet"))
    returning = set(landed.column("user_id").to_pylist())
    assert "design.mode=optimise (no designer at" in first.stdout
    designer_version = _designer(cfg).save(LakePaths.of(cfg).designer_model())  # as train-designer would leave it

    second = _submit(ray_head, f"nightly-{DAY2}", *overrides, f"run_date={DAY2}")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "refreshed 2 user vector(s)" in second.stdout
    # Only θ moved overnight: the designer stays valid (no retrain) and the night designs with it.
    assert f"design.mode=amortised+refine (designer {designer_version})" in second.stdout
    assert set(reader.read_run(cfg.lake_uri, DAY2, columns=["mode"]).column("mode").to_pylist()) == {"amortised+refine"}
    assert reader.run_info(cfg.lake_uri, DAY2)["properties"]["designer_version"] == designer_version
    assert reader.list_complete_runs(cfg.lake_uri) == [DAY1, DAY2]
    designs = reader.read_run(cfg.lake_uri, DAY2)
    assert set(designs.column("user_id").to_pylist()) == returning  # only the users whose vector changed
    assert designs.num_rows == len(returning) * categories * 2
    report = json.loads(storage.read_bytes(f"{cfg.lake_uri}/evaluation/nightly/run_date={DAY2}/report.json"))
    assert report["changed_users"] == 2 and report["quarantined"] == {"landed: user not in the catalogue": 1}
    manifest = reader.run_info(cfg.lake_uri, DAY2)
    assert manifest["model_version"].startswith(report["model_version"])
    page = storage.read_bytes(LakePaths.of(cfg).report(DAY2)).decode()  # the night's report, linking the first night
    assert f"report: {LakePaths.of(cfg).report(DAY2)}" in second.stdout
    assert f'<a href="../run_date={DAY1}/index.html">{DAY1}</a>' in page and "<h2>Judges</h2>" in page

    again = _submit(ray_head, f"nightly-{DAY2}", *overrides, f"run_date={DAY2}")
    assert again.returncode != 0 and "already exists" in again.stdout + again.stderr  # Ray refuses the same id
    retry = _submit(ray_head, f"nightly-{DAY2}-retry", *overrides, f"run_date={DAY2}")
    assert retry.returncode == 0 and "nothing to do" in retry.stdout  # a published date is a no-op
    assert reader.run_info(cfg.lake_uri, DAY2) == manifest


def _designer(cfg):
    """An (untrained) designer bound to the lake's recommender and generator: compatible with them."""
    from fashiongen.models.contract import load_generator, load_recommender
    from fashiongen.models.designer import AmortisedDesigner

    paths = LakePaths.of(cfg)
    rec_uri, gen_uri = paths.design_models(cfg.recommender.model)
    recommender, generator = load_recommender(rec_uri), load_generator(gen_uri)
    designer = AmortisedDesigner(recommender.user_vectors().shape[1], len(generator.categories),
                                 int(generator.latent_dim), cfg.design.restarts, hidden=16)
    designer.bind(recommender, generator)
    return designer


def test_a_designer_for_other_models_is_retrained_before_the_night_designs(lake, tmp_path, monkeypatch):
    from fashiongen.pipeline.nightly import design_settings
    from fashiongen.training import designer as training

    cfg, overrides, _ = lake
    cfg = load_config(None, [*overrides, f"generation.designer_uri={tmp_path / 'designer.pt'}"])
    assert design_settings(cfg)[0].design.mode == "optimise"  # none trained: the configured mode
    stale = _designer(cfg)
    stale.meta["generator_version"] = "a-generator-since-replaced"
    stale.save(str(tmp_path / "designer.pt"))
    retrained = []
    monkeypatch.setattr(training, "train_designer_on_lake",
                        lambda c, address=None: retrained.append(c) or type("R", (), {"model_version": "new"})())
    night, why = design_settings(cfg)
    assert retrained == [cfg] and night.design.mode == "amortised+refine" and "retrained" in why and "new" in why
    off = load_config(None, [*overrides, f"generation.designer_uri={tmp_path / 'designer.pt'}", "nightly.designer=false"])
    assert design_settings(off)[0].design.mode == "optimise" and len(retrained) == 1


class _Args:
    def __init__(self, **kw):
        self.__dict__.update(kw)
