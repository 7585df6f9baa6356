"""The designs job's progress line: printed when the counts move, once per change, with rate and time left."""
from __future__ import annotations

import time

from fashiongen.generation.progress import ProgressCounter, ProgressPrinter


def test_counter_sums_what_the_actors_report():
    counter = ProgressCounter()
    counter.add(4, 0)
    counter.add(3, 1)
    assert counter.counts() == (7, 1)


def test_printer_prints_a_line_per_change_and_survives_a_failing_read(capsys):
    reads = iter([(0, 0), RuntimeError("actor gone"), (2, 0), (2, 0), (5, 1)])

    def read():
        value = next(reads, (5, 1))
        if isinstance(value, Exception):
            raise value
        return value

    with ProgressPrinter(read, "2026-11-26", todo=10, every=0.02):
        time.sleep(0.4)
    first, *lines = capsys.readouterr().out.splitlines()
    assert first.startswith("designs run 2026-11-26: 10 pairs to design; a progress line every 0 s")
    assert [line.split(",")[0] for line in lines] == ["designs run 2026-11-26: 2/10 pairs",
                                                      "designs run 2026-11-26: 6/10 pairs (1 failed)"]
    assert "pairs/s, about" in lines[0] and " s left" in lines[0]


def test_line_has_no_eta_when_nothing_is_left():
    printer = ProgressPrinter(lambda: (0, 0), "2026-11-26", todo=3)
    assert printer.line(3, 0).startswith("designs run 2026-11-26: 3/3 pairs, ") and "left" not in printer.line(3, 0)
