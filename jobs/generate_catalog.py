"""Generate the personalised catalogue: Ray Data designs every (user, category) pair and publishes the run.

    ray job submit --working-dir . -- python jobs/generate_catalog.py --config configs/default.yaml [key=value ...]

A published run_date is a no-op (pass --force to recompute); a crashed one resumes. Exits non-zero on failure, with a message that says what to do.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run the submitted checkout's package

from fashiongen.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
