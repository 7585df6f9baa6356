"""Failure injection for tests, kept out of the production config.

    FASHIONGEN_FAULTS="recommender.epoch=1"    rank 0 of the DVBPR training raises once at the start of epoch 1
    FASHIONGEN_FAULTS="gan.epoch=0"            the GAN training likewise
    FASHIONGEN_FAULTS="design.pairs=8"         each design actor raises once it has designed 8 pairs
    FASHIONGEN_FAULTS="generate.before_digests=1"  the designs job raises after writing its rows (also
                                               generate.before_pipeline: before any design is written;
                                               generate.before_publish: after the digests, before the commit;
                                               generate.after_publish: after the commit;
                                               lake.before_catalog_commit: inside the commit, once the
                                               snapshot's manifests and metadata file are written)
    FASHIONGEN_FAULTS="generate.before_publish=kill"  ... or dies there by SIGKILL, as `kill -9` would

Drivers read the variable once (`planned()`) and hand the plan to their Ray workers as plain data, since workers
of an already running Ray do not see the driver's later environment. Unset, nothing is ever injected.
"""
from __future__ import annotations

import os
import signal

from fashiongen import storage

ENV = "FASHIONGEN_FAULTS"
KILL = -9


def planned() -> dict[str, int]:
    """{point: value} from FASHIONGEN_FAULTS ("a.b=1,c.d=kill"; kill = KILL); {} when unset."""
    plan: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in os.environ.get(ENV, "").split(","))):
        point, _, value = item.partition("=")
        plan[point.strip()] = KILL if value.strip() == "kill" else int(value)
    return plan


def fail_at(plan: dict[str, int], point: str) -> None:
    """Raise (or with KILL, die by SIGKILL) when `point` is planned: the driver-side crash points of a run."""
    if plan.get(point) == KILL:
        os.kill(os.getpid(), signal.SIGKILL)
    if plan.get(point):
        raise RuntimeError(f"injected failure at {point} ({ENV})")


def fail_once_at_epoch(plan: dict[str, int], point: str, epoch: int, output_uri: str) -> None:
    """Raise once when `plan[point] == epoch`; a marker under the run's output makes it once only."""
    if plan.get(point) != epoch:
        return
    marker = storage.join(output_uri, f"_injected_failure_{point}_{epoch}")
    if storage.exists(marker):
        return
    storage.write_bytes(marker, b"")
    raise RuntimeError(f"injected failure at epoch {epoch} ({ENV} {point}={epoch})")
