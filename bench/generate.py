"""The personalised-catalogue job (`run_generation`) against the bare preference engine, and its memory at scale.

    python bench/generate.py throughput [--pairs 400] [--actors 1] [--batch-pairs 64] [--pairs-per-block 1024]
    python bench/generate.py scale [--users 1000,10000,100000] [--batch-pairs 64] [--pairs-per-block 1024]

Both build (or reuse) simulated Fashion-MNIST catalogues with `prepare_catalogue` (1000 items, `--users` shoppers,
10 categories, so pairs = users x 10) and untrained but real checkpoints (weights do not change the speed) under
`--work` (default /tmp/fashiongen-bench-generate), start one local Ray (`--num-cpus`, default 2 = this machine's
cores; workers get OMP_NUM_THREADS=1) and write the lake under `--work` too.

throughput: the small default models (DVBPR small k=50, LSGAN small z=64) at the official R=16, T=10. Each repeat
times, in this order, the bare engine in the driver (`PreferenceEngine.optimise` on the run's pairs, built exactly as
a DesignActor builds it: same checkpoints, catalogue, oracle and DesignConfig, torch threads = one actor's) and
the job end to end (`run_generation`, fresh run_date, force). Reports both rates, their ratio and where the job's
wall time goes (driver phases, timed by wrapping the job's own functions; actor construction, row building and PNG
encoding, timed in the driver).

scale: a tiny model (DVBPR k=4, LSGAN small z=8) with steps=0, restarts=1, top_k=1 and no category guard (with no
step there is nothing for it to steer), so the pipeline is what is measured.
Each size runs in a fresh process (fresh driver and Ray) and reports peak memory (driver: getrusage, and
per phase from a /proc poll; each Ray process: its VmHWM read from /proc by a poller thread every 0.5 s),
output files and sizes, and the pipeline's cost per pair beyond the bare engine's (same settings, in the driver).

Results (JSON and the markdown tables) go to bench/results/.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

RESULTS = Path(__file__).resolve().parent / "results"
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
ITEMS = 1000
CATEGORIES = 10


# ------------------------------------------------------------------------------------------ fixtures
def build_models(work: Path, users: int, k: int, z_dim: int) -> dict[str, str]:
    """A simulated catalogue of `users` shoppers (reused when already built) and untrained DVBPR / LSGAN checkpoints."""
    from fashiongen.config import load_config
    from fashiongen.data.contract import load_catalogue
    from fashiongen.data.prepare import prepare_catalogue
    from fashiongen.models.dvbpr import DVBPR
    from fashiongen.models.gan import ConditionalGAN

    catalogue_uri = str(work / f"cat-u{users}")
    cfg = load_config(None, [f"data.catalogue_uri={catalogue_uri}", f"data.max_items={ITEMS}",
                             f"simulation.num_users={users}", f"recommender.k={k}"])
    started = time.perf_counter()
    _, reused = prepare_catalogue(cfg)
    print(f"catalogue {catalogue_uri}: {'reused' if reused else 'built'} in {time.perf_counter() - started:.1f} s",
          flush=True)
    models = work / f"models-u{users}-k{k}-z{z_dim}"
    rec_uri, gan_uri = str(models / "dvbpr.pt"), str(models / "generator.pt")
    if not (Path(rec_uri).exists() and Path(gan_uri).exists()):
        catalogue = load_catalogue(catalogue_uri)
        rec = DVBPR.from_config(cfg.recommender)
        rec.build_for(catalogue)
        rec.index_catalogue(catalogue.images)
        rec.save(rec_uri)
        ConditionalGAN("small", z_dim, catalogue.categories, tuple(rec.image_shape)).save(gan_uri)
    return {"catalogue_uri": catalogue_uri, "rec_uri": rec_uri, "gan_uri": gan_uri}


def job_config(models: dict[str, str], lake: str, settings: dict[str, object], run_date: str = ""):
    """The job's config: each setting goes to the design section (engine) or the generation section (job)."""
    import dataclasses

    from fashiongen.config import DesignConfig, load_config

    design = {f.name for f in dataclasses.fields(DesignConfig)}
    return load_config(None, [f"lake_uri={lake}", f"data.catalogue_uri={models['catalogue_uri']}",
                              f"generation.recommender_uri={models['rec_uri']}", f"run_date={run_date}",
                              f"generation.generator_uri={models['gan_uri']}", "generation.use_gpu=false",
                              *(f"{'design' if k in design else 'generation'}.{k}={v}" for k, v in settings.items())])


def start_ray(num_cpus: int, object_store_gib: float) -> None:
    import ray

    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             object_store_memory=int(object_store_gib * 2**30),
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}})


def driver_actor(cfg, run_date: str):
    """A DesignActor built in this process: the exact engine, models and settings the job's actors use."""
    from fashiongen.config import to_dict
    from fashiongen.generation.actor import DesignActor
    from fashiongen.lake.paths import LakePaths

    paths = LakePaths.of(cfg)
    rec_uri, gen_uri = paths.design_models(cfg.recommender.model)
    guard_uri = paths.classifier_model("guard") if cfg.design.category_guard else ""  # train_classifiers wrote it
    return DesignActor(rec_uri, gen_uri, cfg.data.catalogue_uri, to_dict(cfg.design), run_date, "bench",
                       paths.work(run_date, "bench-failures"), guard_uri=guard_uri)


def read_pairs(cfg, run_date: str, limit: int | None = None):
    """The pairs the job wrote for `run_date` (pair_id, user_id, category), in file order."""
    from fashiongen.lake.paths import LakePaths
    from fashiongen import storage

    import pyarrow.dataset as ds

    fs, path = storage.filesystem(LakePaths(cfg.lake_uri).work(run_date, "pairs"))
    table = ds.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True).to_table()
    return table if limit is None else table.slice(0, limit)


def engine_inputs(actor, pairs):
    """(pair_ids, user indices, generator category indices) as DesignActor.__call__ derives them."""
    import numpy as np

    users = actor._user_index(pairs.column("user_id").to_pylist())
    cats = np.array([actor.categories[c] for c in pairs.column("category").to_pylist()], dtype=np.int64)
    return pairs.column("pair_id").to_pylist(), users, cats


# ------------------------------------------------------------------------------------------ instrumentation
@dataclass
class Phases:
    """Wall-clock spans of the job's driver-side functions, recorded by wrapping them (no change to the job)."""

    spans: list[tuple[str, float, float]] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def wrapped(self, lake: str):
        from fashiongen.generation import job
        from fashiongen.lake import publish
        from fashiongen.lake.paths import LakePaths

        originals = {"write_pairs": (job, job.write_pairs), "dedupe_check": (publish, publish.dedupe_check),
                     "publish_run": (publish, publish.publish_run), "commit_files": (publish, publish.commit_files),
                     "summarise": (job, job.summarise)}

        def timed(name, fn):
            def call(*args, **kwargs):
                if name == "publish_run":  # the checkpoint is deleted by publish_run: size it first
                    self.notes["checkpoint_bytes"], self.notes["checkpoint_files"] = \
                        dir_size(Path(LakePaths(lake).checkpoint(args[1])))
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.spans.append((name, start, time.perf_counter()))
            return call

        for name, (module, fn) in originals.items():
            setattr(module, name, timed(name, fn))
        try:
            yield self
        finally:
            for name, (module, fn) in originals.items():
                setattr(module, name, fn)

    def total(self, name: str) -> float:
        return sum(end - start for n, start, end in self.spans if n == name)

    def first_start(self, name: str) -> float:
        return min(start for n, start, _ in self.spans if n == name)


def read_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (bytes) of a process, {} if it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) * 1024
    return out


def descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_title(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def role_of(title: str) -> str:
    if "DesignActor" in title:
        return "design actor"
    if "raylet" in title:
        return "raylet"
    if "gcs_server" in title:
        return "gcs_server"
    if title.startswith("ray::"):
        return "other Ray workers (read/PNG/write tasks, idle)"
    return "other Ray processes (dashboard agent, log monitor, ...)"


class MemoryPoller(threading.Thread):
    """Every `interval` s: the driver's RSS (time series) and, per descendant process, its latest VmHWM and titles."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval = interval
        self.stop_event = threading.Event()
        self.driver: list[tuple[float, int]] = []
        self.hwm: dict[int, int] = {}
        self.titles: dict[int, set[str]] = {}

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.driver.append((time.perf_counter(), read_status(os.getpid()).get("VmRSS", 0)))
            for pid in descendants(os.getpid()):
                hwm = read_status(pid).get("VmHWM")
                if hwm is not None:
                    self.hwm[pid] = max(self.hwm.get(pid, 0), hwm)
                    self.titles.setdefault(pid, set()).add(process_title(pid))
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()

    def peaks_by_role(self) -> dict[str, dict[str, int]]:
        """role -> {processes, max_hwm} (a process is in the role of any title it had)."""
        roles: dict[str, dict[str, int]] = {}
        for pid, hwm in self.hwm.items():
            role = sorted({role_of(t) for t in self.titles[pid]})[0]
            entry = roles.setdefault(role, {"processes": 0, "max_hwm": 0})
            entry["processes"] += 1
            entry["max_hwm"] = max(entry["max_hwm"], hwm)
        return roles

    def driver_peak(self, start: float, end: float) -> int:
        return max((rss for t, rss in self.driver if start <= t <= end), default=0)


def dir_size(path: Path, suffix: str = "") -> tuple[int, int]:
    """(bytes, files) under a local folder, counting files ending in `suffix`."""
    if not path.exists():
        return 0, 0
    sizes = [p.stat().st_size for p in path.rglob(f"*{suffix}") if p.is_file()]
    return sum(sizes), len(sizes)


def mib(n: float) -> str:
    return f"{n / 2**20:.0f} MiB"


def save(name: str, payload: dict, markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"{name}-{stamp}.json").write_text(json.dumps(payload, indent=1, default=str))
    (RESULTS / f"{name}-{stamp}.md").write_text(markdown + "\n")
    print(f"\nresults: {RESULTS}/{name}-{stamp}.{{json,md}}")


def machine_line() -> str:
    load = os.getloadavg()
    return (f"machine: {os.cpu_count()} CPU cores, no GPU; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
            "(1/5/15 min, at the end; shared with other jobs)")


# ------------------------------------------------------------------------------------------ throughput
def throughput(args: argparse.Namespace) -> int:
    import torch

    from fashiongen.generation.job import encode_designs, run_generation
    from fashiongen.training.classifier import train_classifiers

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    users = -(-args.pairs // CATEGORIES)
    models = build_models(work, users, k=50, z_dim=64)
    generation = {"restarts": 16, "steps": 10, "top_k": 3, "actors": args.actors, "batch_pairs": args.batch_pairs,
                  "pairs_per_block": args.pairs_per_block}
    lake = str(work / "lake-throughput")
    start_ray(args.num_cpus, args.object_store_gib)
    # Warm-up: a 10-pair run (one user) starts Ray's worker processes, as a long-lived cluster would have them.
    from fashiongen.data.contract import load_catalogue

    warm_users = work / "warm-up-users.csv"
    warm_users.write_text("user_id\n" + str(load_catalogue(models["catalogue_uri"], with_images=False).user_ids[0]) + "\n")
    cfg = job_config(models, lake, {**generation, "users_uri": str(warm_users)}, "2030-01-01")
    train_classifiers(cfg)  # the pipeline's own step (the job trains nothing)
    t0 = time.perf_counter()
    summary = run_generation(cfg, force=True)
    print(f"warm-up run: {summary.pairs_this_attempt} pairs in {time.perf_counter() - t0:.1f} s", flush=True)

    rows, engine_actor = [], None
    for rep in range(1, args.repeats + 1):
        run_date = (dt.date(2030, 1, 1) + dt.timedelta(days=rep)).isoformat()
        cfg = job_config(models, lake, generation, run_date)
        phases = Phases()
        with phases.wrapped(lake):
            t0 = time.perf_counter()
            summary = run_generation(cfg, force=True)
            job_wall = time.perf_counter() - t0
        if engine_actor is None:  # the same pairs for every run_date
            pairs = read_pairs(cfg, run_date)
            started = time.perf_counter()
            engine_actor = driver_actor(cfg, run_date)
            actor_init_s = time.perf_counter() - started
            pair_ids, user_idx, cat_idx = engine_inputs(engine_actor, pairs)
            engine_actor.engine.optimise(pair_ids[:2], user_idx[:2], cat_idx[:2], run_date)  # warm-up
        assert summary.pairs_this_attempt == len(pair_ids) == summary.pairs_done, summary
        started = time.perf_counter()
        result = engine_actor.engine.optimise(pair_ids, user_idx, cat_idx, run_date)
        engine_s = time.perf_counter() - started
        setup = phases.first_start("write_pairs") - t0
        pipeline = summary.seconds - min(e - s for n, s, e in phases.spans if n == "dedupe_check")
        row = {"rep": rep, "run_date": run_date, "pairs": len(pair_ids), "engine_s": engine_s, "job_wall_s": job_wall,
               "pipeline_s": summary.seconds, "driver_setup_s": setup, "write_pairs_s": phases.total("write_pairs"),
               "dedupe_check_s": phases.total("dedupe_check"), "pipeline_only_s": pipeline,
               "publish_run_s": phases.total("publish_run"), "summarise_s": phases.total("summarise")}
        rows.append(row)
        print(f"repeat {rep}: engine {len(pair_ids) / engine_s:.2f} pairs/s, job {len(pair_ids) / job_wall:.2f} "
              f"pairs/s end to end, ratio {engine_s / job_wall:.3f}", flush=True)

    # What the actor does beyond the engine (row building), and the PNG stage, on the last engine result.
    started = time.perf_counter()
    raw = engine_actor._rows(result, pairs.column("user_id").to_pylist(), pairs.column("category").to_pylist())
    actor_call_s = engine_s + time.perf_counter() - started
    started = time.perf_counter()
    encode_designs(raw, lake, False)
    encode_s = time.perf_counter() - started

    measured = rows
    n = measured[0]["pairs"]
    median = lambda key: sorted(r[key] for r in measured)[len(measured) // 2]  # noqa: E731
    engine_rate, job_rate = n / median("engine_s"), n / median("job_wall_s")
    lines = [
        "## Personalised-catalogue job vs bare engine (CPU)", "",
        machine_line(),
        f"models: DVBPR small k=50 (1x28x28), LSGAN small z=64; catalogue {ITEMS} items, {users} users x "
        f"{CATEGORIES} categories = {n} pairs; simulated (oracle scores on, in both)",
        f"settings: R=16 T=10 top_k=3; actors={args.actors} batch_pairs={args.batch_pairs} "
        f"pairs_per_block={args.pairs_per_block} rows_per_file=50000; Ray num_cpus={args.num_cpus}; torch threads "
        f"{args.threads} in the driver, OMP_NUM_THREADS=1 in workers", "",
        "| repeat | engine s | engine pairs/s | job wall s | job pairs/s | ratio job/engine |",
        "|---|---|---|---|---|---|"]
    for r in measured:
        lines.append(f"| {r['rep']} | {r['engine_s']:.1f} | {n / r['engine_s']:.2f} | {r['job_wall_s']:.1f} | "
                     f"{n / r['job_wall_s']:.2f} | {r['engine_s'] / r['job_wall_s']:.3f} |")
    lines.append(f"| **median** | {median('engine_s'):.1f} | {engine_rate:.2f} | {median('job_wall_s'):.1f} | "
                 f"{job_rate:.2f} | **{job_rate / engine_rate:.3f}** (target >= 0.85) |")
    lines += ["", "Where the job's wall time goes (median over repeats, seconds):", "",
              "| phase | s | share |", "|---|---|---|"]
    wall = median("job_wall_s")
    for key, name in (("driver_setup_s", "driver setup: load models + catalogue, user digests, prepare_run"),
                      ("write_pairs_s", "write_pairs (a Ray Data job)"),
                      ("pipeline_only_s", "pipeline: read -> DesignActor pool -> PNG -> write_parquet"),
                      ("dedupe_check_s", "dedupe_check x2 (before/after counts)"),
                      ("publish_run_s", "publish_run (verify + Iceberg commit)"),
                      ("summarise_s", "summarise (reads the whole run back)")):
        lines.append(f"| {name} | {median(key):.2f} | {median(key) / wall:.1%} |")
    lines += ["", "Inside the pipeline, measured in the driver on the same pairs (single run):", "",
              "| step | s | per pair ms |", "|---|---|---|",
              f"| DesignActor construction (models, catalogue, oracle) | {actor_init_s:.2f} | - |",
              f"| engine.optimise | {median('engine_s'):.2f} | {1e3 * median('engine_s') / n:.2f} |",
              f"| engine + row building (DesignActor._rows) | {actor_call_s:.2f} | {1e3 * actor_call_s / n:.2f} |",
              f"| encode_designs (PNG stage) | {encode_s:.3f} | {1e3 * encode_s / n:.3f} |"]
    markdown = "\n".join(lines)
    print("\n" + markdown)
    save("generate-throughput", {"args": vars(args), "rows": rows, "actor_init_s": actor_init_s,
                                 "actor_call_s": actor_call_s, "encode_s": encode_s,
                                 "engine_pairs_per_s": engine_rate, "job_pairs_per_s": job_rate,
                                 "loadavg": os.getloadavg()}, markdown)
    return 0


# ------------------------------------------------------------------------------------------ scale
def scale_one(args: argparse.Namespace) -> int:
    """One size, in its own process; prints one JSON line."""
    import torch

    from fashiongen.generation.job import run_generation
    from fashiongen.lake.paths import LakePaths
    from fashiongen.training.classifier import train_classifiers

    torch.set_num_threads(1)
    work = Path(args.work)
    models = build_models(work, args.users, k=4, z_dim=8)
    lake = str(work / f"lake-scale-u{args.users}")
    run_date = "2030-02-01"
    cfg = job_config(models, lake, {"restarts": 1, "steps": 0, "top_k": 1, "category_guard": 0,
                                    "actors": args.actors, "batch_pairs": args.batch_pairs,
                                    "pairs_per_block": args.pairs_per_block, "rows_per_file": args.rows_per_file},
                     run_date)
    train_classifiers(cfg)  # the pipeline's own step (the job trains nothing)
    start_ray(args.num_cpus, args.object_store_gib)
    poller = MemoryPoller()
    rss_before = read_status(os.getpid())["VmRSS"]
    poller.start()
    phases = Phases()
    with phases.wrapped(lake):
        t0 = time.perf_counter()
        summary = run_generation(cfg, force=True)
        t1 = time.perf_counter()
    time.sleep(0.5)
    poller.stop()
    driver_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    before_publish = phases.first_start("publish_run")
    from fashiongen.lake import reader

    committed = reader.complete_run_files(lake, [run_date])
    design_bytes, design_files = sum(Path(f).stat().st_size for f in committed), len(committed)
    metadata_bytes, metadata_files = dir_size(Path(LakePaths(lake).designs()) / "metadata")
    pairs_bytes, pairs_files = dir_size(Path(LakePaths(lake).work(run_date, "pairs")),
                                        ".parquet")
    result = {
        "users": args.users, "pairs": summary.pairs_this_attempt, "pairs_done": summary.pairs_done,
        "pairs_failed": summary.pairs_failed, "job_wall_s": t1 - t0, "pipeline_s": summary.seconds,
        "write_pairs_s": phases.total("write_pairs"), "dedupe_check_s": phases.total("dedupe_check"),
        "publish_run_s": phases.total("publish_run"), "summarise_s": phases.total("summarise"),
        "commit_s": phases.total("commit_files"), "metadata_bytes": metadata_bytes, "metadata_files": metadata_files,
        "driver_rss_before": rss_before, "driver_peak": driver_peak,
        "driver_peak_until_publish": poller.driver_peak(t0, before_publish),
        "driver_peak_publish_summarise": poller.driver_peak(before_publish, t1),
        "roles": poller.peaks_by_role(),
        "design_files": design_files, "design_bytes": design_bytes, "pairs_files": pairs_files,
        "pairs_bytes": pairs_bytes, **phases.notes,
    }
    # The bare engine + row building at the same settings, in this process (after the peaks above are taken).
    import ray

    ray.shutdown()
    sample = read_pairs(cfg, run_date, limit=min(summary.pairs_this_attempt, args.engine_sample))
    actor = driver_actor(cfg, run_date)
    pair_ids, user_idx, cat_idx = engine_inputs(actor, sample.slice(0, 64))
    actor.engine.optimise(pair_ids, user_idx, cat_idx, run_date)  # warm-up
    pair_ids, user_idx, cat_idx = engine_inputs(actor, sample)
    started = time.perf_counter()
    actor.engine.optimise(pair_ids, user_idx, cat_idx, run_date)
    result["engine_us_per_pair"] = 1e6 * (time.perf_counter() - started) / len(pair_ids)
    started = time.perf_counter()
    actor(sample)
    result["actor_call_us_per_pair"] = 1e6 * (time.perf_counter() - started) / len(pair_ids)
    result["engine_sample"] = len(pair_ids)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def scale(args: argparse.Namespace) -> int:
    results = []
    for users in [int(u) for u in args.users.split(",")]:
        command = [sys.executable, __file__, "scale-one", "--users", str(users), "--work", args.work,
                   "--num-cpus", str(args.num_cpus), "--actors", str(args.actors),
                   "--batch-pairs", str(args.batch_pairs), "--pairs-per-block", str(args.pairs_per_block),
                   "--rows-per-file", str(args.rows_per_file), "--engine-sample", str(args.engine_sample),
                   "--object-store-gib", str(args.object_store_gib)]
        print(f"$ {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout_s)
        except subprocess.TimeoutExpired:
            print(f"  {users} users: did not finish within {args.timeout_s} s; stopping here", flush=True)
            break
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stdout[-3000:], proc.stderr[-5000:], sep="\n")
            print(f"  {users} users: failed (exit {proc.returncode})")
            break
        result = json.loads(lines[-1][len("RESULT "):])
        result["process_wall_s"] = time.perf_counter() - started
        results.append(result)
        print(f"  {result['pairs']} pairs: job {result['job_wall_s']:.1f} s, driver peak {mib(result['driver_peak'])}",
              flush=True)
    if not results:
        return 1
    roles = sorted({role for r in results for role in r["roles"]})
    head = "| pairs | " + " | ".join(f"{r['pairs']:,}" for r in results) + " |"
    sep = "|---" * (len(results) + 1) + "|"

    def row(name: str, cell) -> str:
        return f"| {name} | " + " | ".join(cell(r) for r in results) + " |"

    lines = [
        "## Personalised-catalogue job at scale: tiny model, pipeline overhead (CPU)", "",
        machine_line(),
        f"models: DVBPR small k=4, LSGAN small z=8; steps=0 restarts=1 top_k=1 (one forward per pair); "
        f"{ITEMS} items, {CATEGORIES} categories; simulated (oracle scores on)",
        f"settings: actors={args.actors} batch_pairs={args.batch_pairs} pairs_per_block={args.pairs_per_block} "
        f"rows_per_file={args.rows_per_file}; Ray num_cpus={args.num_cpus}, object store {args.object_store_gib} GiB; "
        "each size in a fresh process", "",
        head, sep,
        row("job wall s (run_generation)", lambda r: f"{r['job_wall_s']:.1f}"),
        row("  pipeline s (read -> actors -> PNG -> write)", lambda r: f"{r['pipeline_s']:.1f}"),
        row("  write_pairs s", lambda r: f"{r['write_pairs_s']:.1f}"),
        row("  dedupe_check x2 + publish_run + summarise s",
            lambda r: f"{r['dedupe_check_s'] + r['publish_run_s'] + r['summarise_s']:.1f}"),
        row("  of which the Iceberg commit s (share of the job)",
            lambda r: f"{r['commit_s']:.2f} ({r['commit_s'] / r['job_wall_s']:.2%})"),
        row("job us/pair (end to end)", lambda r: f"{1e6 * r['job_wall_s'] / r['pairs']:.0f}"),
        row("bare engine us/pair (driver)", lambda r: f"{r['engine_us_per_pair']:.0f}"),
        row("engine + row building us/pair (driver)", lambda r: f"{r['actor_call_us_per_pair']:.0f}"),
        row("pipeline overhead us/pair (job - engine)",
            lambda r: f"{1e6 * r['job_wall_s'] / r['pairs'] - r['engine_us_per_pair']:.0f}"),
        row("driver peak RSS (getrusage)", lambda r: mib(r["driver_peak"])),
        row("  driver RSS before the job", lambda r: mib(r["driver_rss_before"])),
        row("  driver peak until publish (poll)", lambda r: mib(r["driver_peak_until_publish"])),
        row("  driver peak in publish + summarise (poll)", lambda r: mib(r["driver_peak_publish_summarise"])
            if r["driver_peak_publish_summarise"] else "shorter than one poll"),
    ]
    for role in roles:
        lines.append(row(f"peak RSS (VmHWM): {role}",
                         lambda r, role=role: (f"{mib(r['roles'][role]['max_hwm'])} (max of "
                                               f"{r['roles'][role]['processes']})") if role in r["roles"] else "-"))
    lines += [
        row("designs: parquet files in the run's snapshot", lambda r: str(r["design_files"])),
        row("designs: bytes (bytes/pair)",
            lambda r: f"{mib(r['design_bytes'])} ({r['design_bytes'] / r['pairs']:.0f})"),
        row("table metadata (all runs of this lake): files / bytes",
            lambda r: f"{r['metadata_files']} / {r['metadata_bytes'] / 1024:.0f} KiB"),
        row("pairs list: files / bytes", lambda r: f"{r['pairs_files']} / {mib(r['pairs_bytes'])}"),
        row("checkpoint before publish: files / bytes",
            lambda r: f"{r.get('checkpoint_files', 0)} / {mib(r.get('checkpoint_bytes', 0))}"),
        row("pairs failed", lambda r: str(r["pairs_failed"])),
    ]
    markdown = "\n".join(lines)
    print("\n" + markdown)
    save("generate-scale", {"args": vars(args), "results": results, "loadavg": os.getloadavg()}, markdown)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name, defaults in (("throughput", {"batch": 64}), ("scale", {"batch": 64}), ("scale-one", {"batch": 64})):
        p = sub.add_parser(name)
        p.add_argument("--work", default="/tmp/fashiongen-bench-generate", help="catalogues, models and lakes")
        p.add_argument("--num-cpus", type=int, default=2, help="Ray's logical CPUs (this machine has 2 cores)")
        p.add_argument("--object-store-gib", type=float, default=2.0)
        p.add_argument("--actors", type=int, default=1)
        p.add_argument("--batch-pairs", type=int, default=defaults["batch"])
        p.add_argument("--pairs-per-block", type=int, default=1024)
        if name == "throughput":
            p.add_argument("--pairs", type=int, default=150)
            p.add_argument("--repeats", type=int, default=1, help="measured repeats after a 10-pair warm-up run")
            p.add_argument("--threads", type=int, default=1, help="torch threads in the driver (= one actor's)")
        else:
            p.add_argument("--rows-per-file", type=int, default=50000)
            p.add_argument("--engine-sample", type=int, default=20000, help="pairs timed on the bare engine")
            if name == "scale":
                p.add_argument("--users", default="1000,10000,100000", help="sizes; pairs = users x 10")
                p.add_argument("--timeout-s", type=int, default=900, help="give up on a size after this long")
            else:
                p.add_argument("--users", type=int, required=True)
    args = parser.parse_args()
    return {"throughput": throughput, "scale": scale, "scale-one": scale_one}[args.mode](args)


if __name__ == "__main__":
    raise SystemExit(main())
