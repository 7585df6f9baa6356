"""Evaluate recommender checkpoints: full, sampled-100 and cold AUC with bootstrap CIs (and the oracle ceiling).

    ray job submit --working-dir . -- python jobs/evaluate.py --config configs/default.yaml [key=value ...]

Results go to <lake>/evaluation/recommender/<split>/ and are printed as a markdown table. Exits non-zero on failure, with a message that says what to do.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run the submitted checkout's package

from fashiongen.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
