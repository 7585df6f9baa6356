"""Plumbing shared by the Ray Train drivers (the recommender's and the GAN's); each training loop stays its own file.

- `worker_cpus`: the CPUs (and torch threads) each worker reserves.
- `run_config`: the run's storage (local or `s3://`), stable name, checkpoints kept, failure retries and the quiet
  console (`runtime.train_logging`).
- `finished_run`: the Result of a run whose last checkpoint already holds every epoch asked for, read from storage
  without starting Ray Train (a rerun of a finished recipe, as in every nightly, costs a file read, not a worker group).
- `save_and_report`: per epoch, rank 0 writes the state file into a checkpoint and every rank reports metrics.
- `load_state` / `final_state`: the state file of a worker's resumed checkpoint or of the run's last checkpoint.
- `gather_from_ranks`, `rng_state`, `restore_rng_state`: every rank's RNG state into the checkpoint and back, so a
  resumed run continues exactly where the uninterrupted one would have.
"""
from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from fashiongen import storage
from fashiongen.config import TrainConfig
from fashiongen.errors import FashiongenError
from fashiongen.runtime import train_logging

STATE_FILE = "state.pt"
LEGACY_STATE_FILES = ("dvbpr_state.pt", "gan_state.pt")  # checkpoints written before the drivers shared this module


def _storage(train: TrainConfig) -> tuple[Any, str]:
    """(pyarrow filesystem for S3, else None; the path on it) of train.storage_path."""
    filesystem, path = storage.filesystem(train.storage_path)
    return (filesystem if storage.is_s3(train.storage_path) else None), path


def run_config(train: TrainConfig, run_name: str):
    """Ray Train RunConfig: storage under train.storage_path (S3 through pyarrow), named so a rerun resumes."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig

    filesystem, storage_uri = _storage(train)
    kwargs: dict[str, Any] = {"storage_filesystem": filesystem} if filesystem is not None else {}
    return RunConfig(name=run_name, storage_path=storage_uri,
                     checkpoint_config=CheckpointConfig(num_to_keep=train.num_to_keep),
                     failure_config=FailureConfig(max_failures=train.max_failures), logging_config=train_logging(),
                     **kwargs)


def finished_run(train: TrainConfig, run_name: str, epochs: int):
    """The Result of run `run_name` when its last checkpoint reports epoch >= `epochs` - 1 (what `fit()` would
    return: a resumed loop trains nothing then), or None when the run is absent or has epochs left to train."""
    from ray.train import Result

    filesystem, storage_uri = _storage(train)
    quiet = logging.getLogger("ray.train.v2._internal.execution.checkpoint.checkpoint_manager")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # "A run snapshot was found ...": that is the point here
    try:
        result = Result.from_path(f"{storage_uri.rstrip('/')}/{run_name}", storage_filesystem=filesystem)
    except RuntimeError:  # no such run folder, or no checkpoint snapshot in it yet
        return None
    finally:
        quiet.setLevel(level)
    done = result.checkpoint is not None and (result.metrics or {}).get("epoch", -1) + 1 >= epochs
    return result if done else None


def worker_cpus(train: TrainConfig) -> int:
    """train.cpus_per_worker, or for 0 the free CPUs of a one-node Ray split among the workers (free, not all: a
    CPU held by other work would leave the run waiting forever), 1 where there are several nodes or none alive (a
    cluster's nodes may still scale, so set it there)."""
    if train.cpus_per_worker:
        return train.cpus_per_worker
    import ray

    nodes = [node for node in ray.nodes() if node.get("Alive")]
    if len(nodes) != 1:
        return 1
    return max(1, int(ray.available_resources().get("CPU", 0)) // train.num_workers)


def load_state(directory: str) -> dict[str, Any]:
    name = next((n for n in (STATE_FILE, *LEGACY_STATE_FILES) if os.path.exists(os.path.join(directory, n))),
                STATE_FILE)
    return torch.load(os.path.join(directory, name), map_location="cpu", weights_only=True)


def resumed_state() -> dict[str, Any] | None:
    """In a worker: the state of the checkpoint Ray Train resumes from, or None on a fresh start."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return None
    with checkpoint.as_directory() as directory:
        return load_state(directory)


def save_and_report(metrics: dict[str, Any], rank: int, state: Callable[[], dict[str, Any]]) -> None:
    """Every rank reports `metrics`; rank 0 also saves `state()` (tensors and plain values) as the checkpoint."""
    import ray.train

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = None
        if rank == 0:
            torch.save(state(), os.path.join(directory, STATE_FILE))
            checkpoint = ray.train.Checkpoint.from_directory(directory)
        ray.train.report(metrics, checkpoint=checkpoint)


def final_state(result, what: str, epochs_key: str) -> dict[str, Any]:
    """The state file of a finished run's last checkpoint; FashiongenError when the run saved none."""
    if result.checkpoint is None:
        raise FashiongenError(f"{what} finished without a checkpoint: set {epochs_key} >= 1, or train.run_name to "
                              "start a fresh run")
    with result.checkpoint.as_directory() as directory:
        return load_state(directory)


def gather_from_ranks(value: Any, world: int) -> list[Any]:
    """[value of rank 0, ..., rank world - 1] on every rank (an all-gather; call it on every rank)."""
    import torch.distributed as dist

    if world == 1 or not dist.is_initialized():
        return [value]
    values: list[Any] = [None] * world
    dist.all_gather_object(values, value)
    return values


def rng_state(device: torch.device) -> torch.Tensor:
    """This process's torch RNG state for `device` (the CUDA generator on a GPU), on the CPU."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def restore_rng_state(states: list[torch.Tensor] | None, rank: int, world: int, device: torch.device,
                      fallback_seed: int) -> None:
    """Continue this rank's saved RNG stream when the run had as many ranks (an exact resume), else seed it."""
    if states is not None and len(states) == world:
        state = states[rank].cpu()
        torch.cuda.set_rng_state(state, device) if device.type == "cuda" else torch.set_rng_state(state)
    else:
        torch.manual_seed(fallback_seed)
