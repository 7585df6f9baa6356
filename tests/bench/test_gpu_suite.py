"""bench/gpu_suite.py --smoke: every section of the GPU suite runs on a CPU, in a fresh process that imports none of
Ray, s3fs, boto3 or pandas (a GPU box has only torch, numpy, pyarrow, pyyaml and pillow), and writes one Markdown
table with a row per setting. Timings are not checked, only that every setting ran."""
from __future__ import annotations

import json
import subprocess
import sys

import torch

from fixtures import REPO

GPU_BOX_LACKS = ["ray", "s3fs", "fsspec", "boto3", "botocore", "aiobotocore", "pandas", "moto"]
SMOKE_RUN = """
import json, runpy, sys
suite = runpy.run_path(sys.argv[1], run_name="gpu_suite")
code = suite["main"](["--smoke", "--threads", "1", "--out", sys.argv[2]])
print("IMPORTED", json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[3:]))))
sys.exit(code)
"""
ROWS = {
    "design engine": ["official procedure", "fp32", "bf16", "bf16 + compiled"],
    "DVBPR training": ["fp32", "fp32, channels-last", "bf16, channels-last"],
    "GAN training": ["official", "official, large batch", "small", "flow"],
    "amortised designer": ["training, fp32", "training, bf16", "inference, fp32", "inference, bf16"],
}


def table_rows(markdown: str) -> dict[tuple[str, str], list[str]]:
    """(section, setting) -> [throughput, unit, MFU, note] of each table row."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.splitlines()
             if line.startswith("| ") and not line.startswith("| section |")]
    return {(row[0], row[1]): row[2:] for row in cells}


def test_smoke_mode_writes_a_row_per_setting_on_a_cpu_without_ray(tmp_path):
    out = tmp_path / "suite.md"
    done = subprocess.run([sys.executable, "-c", SMOKE_RUN, str(REPO / "bench" / "gpu_suite.py"), str(out),
                           *GPU_BOX_LACKS], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert json.loads(next(line for line in lines if line.startswith("IMPORTED "))[len("IMPORTED "):]) == []
    markdown = out.read_text()
    assert markdown.startswith("# GPU suite: cpu") and f"torch {torch.__version__}" in markdown
    assert markdown in done.stdout  # printed too
    rows = table_rows(markdown)
    assert list(rows) == [(section, setting) for section, settings in ROWS.items() for setting in settings]
    flow = rows.pop(("GAN training", "flow"))
    assert flow[0] == "-" and "not built yet" in flow[3]
    for (section, setting), (throughput, unit, mfu, note) in rows.items():
        assert float(throughput.replace(",", "")) > 0, (section, setting, note)  # measured, not skipped or failed
        assert unit in ("pairs/s", "img/s", "step/s") and mfu == "n/a"  # no peak is known for a CPU
    assert "x official procedure; " in rows["design engine", "bf16"][3]  # the ratio to the official procedure
