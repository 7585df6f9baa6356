"""Shared fixtures: a real moto S3 server on 127.0.0.1, a local Ray, tiny catalogues built once per session.
The builders behind them are plain functions in tests/fixtures.py."""
from __future__ import annotations

import logging
import os
import uuid
import sys
from pathlib import Path

import pytest

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The bit-for-bit goldens (tests/models/paper_dvbpr.npz, tests/training/paper_gan.npz) were written with oneDNN's AVX2
# kernels; on an AVX-512 machine oneDNN picks others, whose sums round differently. Pin the kernels (before torch is
# imported) so that "the same training" means the same bits on every machine CI runs on.
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")
# numpy's OpenBLAS picks its kernels by CPU too (DYNAMIC_ARCH): on an AVX-512 machine its SkylakeX kernels round the
# linear taste's matrix products differently and tests/data/test_oracle.py's sha256 golden (written on an AVX2
# machine) fails. Pin the AVX2 kernels (before numpy is imported) for the same reason.
os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")


# The slowest files under `--durations` (bench/README, "The test suite from a clean clone"), slowest first. They run
# first: xdist (`--dist loadfile --no-loadscope-reorder`) deals whole files in collection order, so no slow file is
# left to end the run alone on one worker while the other idles.
SLOW_FILES = ("generation/test_generate_job.py", "pipeline/test_nightly.py", "training/test_train_gan.py",
              "generation/test_crash_resume.py", "pipeline/test_demo.py", "training/test_train_recommender.py",
              "training/test_train_designer.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow files first, in SLOW_FILES' order; the rest keep theirs (a stable sort, the same on every worker)."""
    tests = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        path = item.path.relative_to(tests).as_posix() if item.path.is_relative_to(tests) else ""
        return SLOW_FILES.index(path) if path in SLOW_FILES else len(SLOW_FILES)

    items.sort(key=rank)


def _ray_running() -> bool:
    ray = sys.modules.get("ray")  # not imported = not running: the check costs nothing in the fast tests
    return bool(ray is not None and ray.is_initialized())


@pytest.fixture(autouse=True)
def _ray_only_in_slow_tests(request):
    """`pytest -m "not slow"` is the fast inner loop: a test that starts Ray in this process must be marked slow."""
    running = _ray_running()
    yield
    if not running and _ray_running() and request.node.get_closest_marker("slow") is None:
        pytest.fail(f"{request.node.nodeid} started Ray but is not marked @pytest.mark.slow", pytrace=False)


@pytest.fixture(scope="session")
def s3_server():
    """A moto S3 server in server mode (pyarrow, DuckDB and Polars reach it over HTTP) with bucket 'lake'.
    Sets the standard AWS_* variables for the session, as a user's environment would."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="lake")
    yield endpoint
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def ray_local(s3_server):
    """One local Ray for the whole session, one per pytest-xdist worker, with this machine's 2 CPUs (2 train workers
    of 1 CPU each; Ray Train's controller takes none), so a pool larger than the machine cannot hide a hang: each
    start costs ~10 s and its worker processes re-import torch, so the tests that need a cluster share it, as jobs
    share a long-lived cluster. The crash/resume test (ray.init(num_cpus=2)), the nightly jobs (`ray start
    --num-cpus=2`) and the demo start a Ray of their own in another process and stop only that one. Its workers get
    the moto server's AWS_* variables, as a cluster's nodes get their credentials."""
    import ray

    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", **env}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def shared_catalogue(tmp_path_factory):
    """shared_catalogue(builder=planted_catalogue, **settings) -> the URI of a catalogue that a tests/fixtures.py
    builder wrote with those settings, built once per session and shared by every test asking for the same one.
    Read-only: a test that changes a catalogue builds its own with the builder itself."""
    import inspect

    from fixtures import planted_catalogue  # not at the top: OMP_NUM_THREADS above must come before numpy

    built: dict[tuple, str] = {}

    def make(builder=planted_catalogue, **settings) -> str:
        bound = inspect.signature(builder).bind("", **settings)
        bound.apply_defaults()  # planted_catalogue() and planted_catalogue(num_items=120) are one catalogue
        key = (builder.__name__, tuple(sorted((k, v) for k, v in bound.arguments.items() if k != "uri")))
        if key not in built:
            uri = str(tmp_path_factory.mktemp(builder.__name__) / "catalogue")
            builder(uri, **settings)
            built[key] = uri
        return built[key]

    return make


@pytest.fixture(params=["local", "s3"])
def storage_root(request, tmp_path) -> str:
    """A fresh, empty root URI, once as a local folder and once as a prefix on the moto S3 server."""
    if request.param == "s3":
        request.getfixturevalue("s3_server")
        return f"s3://lake/{uuid.uuid4().hex[:12]}"
    return str(tmp_path / "root")
