"""Train the category-conditional LSGAN with Ray Train (DDP across train.num_workers, a checkpoint per epoch).

    ray job submit --working-dir . -- python jobs/train_gan.py --config configs/default.yaml [key=value ...]

Rerunning with the same run name resumes from the last checkpoint. Exits non-zero on failure, with a message that says what to do.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run the submitted checkout's package

from fashiongen.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train-gan", *sys.argv[1:]]))
