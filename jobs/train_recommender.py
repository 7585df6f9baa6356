"""Train the recommender (recommender.model: DVBPR with Ray Train DDP over train.num_workers, or a baseline).

    ray job submit --working-dir . -- python jobs/train_recommender.py --config configs/default.yaml [key=value ...]

Rerunning with the same run name resumes from the last checkpoint; the model goes to <lake>/models/recommender/<model>.pt. Exits non-zero on failure, with a message that says what to do.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run the submitted checkout's package

from fashiongen.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train-recommender", *sys.argv[1:]]))
