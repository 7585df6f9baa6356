"""The designs job's progress line: the design actors count what they finish, the driver prints one line now and
then ("designs run D: 20/30 pairs, 0.18 pairs/s, about 55 s left"), instead of Ray Data's operator dumps."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

PROGRESS_SECONDS = 15.0  # between two progress lines


class ProgressCounter:
    """A Ray actor (no CPU): pairs designed and failed so far in this attempt, summed over the design actors."""

    def __init__(self):
        self.designed, self.failed = 0, 0

    def add(self, designed: int, failed: int) -> None:
        self.designed += designed
        self.failed += failed

    def counts(self) -> tuple[int, int]:
        return self.designed, self.failed


class ProgressPrinter:
    """In the driver, while the pipeline runs: a line every `every` seconds when the counts moved. `read_counts`
    returns (designed, failed) so far, e.g. from a ProgressCounter actor."""

    def __init__(self, read_counts: Callable[[], tuple[int, int]], run_date: str, todo: int,
                 every: float = PROGRESS_SECONDS):
        self.read_counts, self.run_date, self.todo, self.every = read_counts, run_date, todo, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="designs-progress", daemon=True)
        self._began = time.perf_counter()

    def __enter__(self) -> "ProgressPrinter":
        print(f"designs run {self.run_date}: {self.todo} pairs to design; a progress line every {self.every:.0f} s "
              "once a batch of pairs is done (design.batch_pairs)", flush=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every)

    def line(self, designed: int, failed: int) -> str:
        seconds = time.perf_counter() - self._began
        rate = designed / seconds if seconds > 0 else 0.0
        left = max(self.todo - designed - failed, 0)
        eta = f", about {left / rate:.0f} s left" if rate > 0 and left else ""
        failures = f" ({failed} failed)" if failed else ""
        return (f"designs run {self.run_date}: {designed + failed}/{self.todo} pairs{failures}, {rate:.2f} pairs/s"
                f"{eta}")

    def _loop(self) -> None:
        last = (0, 0)
        while not self._stop.wait(self.every):
            try:
                counts = tuple(self.read_counts())
            except Exception:  # best effort: a slow or lost counter never fails the run
                continue
            if counts != last:
                print(self.line(*counts), flush=True)
                last = counts
