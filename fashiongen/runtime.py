"""Connecting to Ray: one place, so every command and job joins a cluster the same way, with a quiet console.

What a user reads is one line per progress step. Ray's chatter goes to Ray's own log files instead
(`RAY_LOGS`, printed by the demo), never an error:
- Ray Train's print patch is off (`RAY_TRAIN_ENABLE_PRINT_PATCH=0`, propagated to the training workers): with it,
  every `print` in a worker reached the console twice (once as the line, once through the root logger);
- Ray Train's own INFO lines (worker group, checkpoint paths) go to its log files only (`train_logging()`);
- Ray Data logs at WARNING on the console and everything to `ray-data.log` (`ray_data_logging.yaml`);
- Ray Data's progress goes to its log file (the designs job prints its own progress line), and the driver does not
  warn that tqdm is missing for the bars of Ray Data inside training workers (they would not render in a log);
- in the local Ray we start: Ray Train's placement-group cleaner cannot reach the State API (it needs the
  dashboard, ~1 GB and ~10 s to start here) and warns every poll, and each checkpoint report is logged at INFO under
  a logger named by a file path (outside `ray.train`, so LoggingConfig misses it); both go to the worker's log
  file only, as do DeprecationWarnings Ray's own modules raise. Ray Train's preemption watcher is off there (a
  local Ray is never drained; the watcher's only output was a core-worker error line about its restart policy).
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

RAY_DATA_LOGGING = Path(__file__).with_name("ray_data_logging.yaml")
RAY_LOGS = "/tmp/ray/session_latest/logs"  # Ray's documented default: worker, Ray Data and Ray Train logs
LOCAL_WORKER_QUIET = {  # logger -> level on the console of the local Ray's workers
    "ray.train.v2._internal.execution.controller.placement_group_cleaner": logging.ERROR,
    "ray.train.v2._internal.execution.context": logging.WARNING,  # by file path: logging.getLogger(__file__)
}


def quiet_ray_console() -> None:
    """Before Ray starts: the settings above that travel by environment (a user's own setting wins)."""
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    os.environ.setdefault("RAY_DATA_LOGGING_CONFIG", str(RAY_DATA_LOGGING))
    logging.getLogger("ray.experimental.tqdm_ray").setLevel(logging.ERROR)


def quiet_local_worker() -> None:
    """`worker_process_setup_hook` of the local Ray: see the module docstring."""
    import importlib.util

    for module, level in LOCAL_WORKER_QUIET.items():
        logging.getLogger(module).setLevel(level)
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            logging.getLogger(spec.origin).setLevel(level)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray(\.|$)")


def train_logging():
    """Ray Train's LoggingConfig for every run: its INFO lines to its log files, warnings and errors on the console."""
    from ray.train import LoggingConfig

    return LoggingConfig(log_level="WARNING")


def ensure_ray(address: str | None = None) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS, as under `ray job submit`), else start a local Ray."""
    quiet_ray_console()
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is not None:
        ray.init(address=address)
    else:
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")  # Ray Train propagates it to its actors
        ray.init(include_dashboard=False, runtime_env={
            "env_vars": {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                         "RAY_DATA_LOGGING_CONFIG": os.environ["RAY_DATA_LOGGING_CONFIG"]},
            "worker_process_setup_hook": "fashiongen.runtime.quiet_local_worker"})
