"""The nightly run: refresh user vectors from the day's interactions (image network frozen), evaluate, design for changed users, publish.

    ray job submit --working-dir . -- python jobs/nightly.py --config configs/default.yaml [key=value ...]

Submit with --submission-id nightly-<date> and run_date=<date>: a published date is a no-op, a crashed one resumes. Exits non-zero on failure, with a message that says what to do.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run the submitted checkout's package

from fashiongen.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["nightly", *sys.argv[1:]]))
