"""Train the catalogue's category classifiers (the realism judge and the design guard), each only when missing or
trained on another catalogue; run it before jobs/generate_catalog.py (the designs job trains nothing).

    ray job submit --working-dir . -- python jobs/train_classifiers.py --config configs/cluster.yaml [key=value ...]

Exits non-zero on failure, with a message that says what to do.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run the submitted checkout's package

from fashiongen.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train-classifiers", *sys.argv[1:]]))
