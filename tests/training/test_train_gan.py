"""Ray Train GAN driver: two workers, per-epoch checkpoints and grids, retry after an injected failure, resume by name."""
from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
import pytest
import torch

from fashiongen.cli import COMMANDS
from fashiongen.config import load_config
from fashiongen.data.contract import write_catalogue
from fashiongen.data.images import decode_image, encode_png
from fashiongen.models.contract import load_generator
from fashiongen.training import gan_command

SIZE = 16
CATEGORIES = ["left", "right"]


def tiny_catalogue(uri: str, n: int = 256) -> None:
    """Grey 16x16 images: a bright bar on the left half (category 'left') or the right half ('right')."""
    rng = np.random.default_rng(0)
    ids, cats, pngs = [], [], []
    for k in range(n):
        img = rng.integers(0, 40, (SIZE, SIZE, 1), dtype=np.uint8)
        col = int(rng.integers(1, 6)) + (0 if k % 2 == 0 else 8)
        img[2:14, col:col + 3] = 230
        ids.append(f"item-{k:04d}")
        cats.append(CATEGORIES[k % 2])
        pngs.append(encode_png(img))
    items = pa.table({"item_id": ids, "category": cats, "image_png": pngs,
                      "width": pa.array([SIZE] * n, pa.int32()), "height": pa.array([SIZE] * n, pa.int32())})
    users = [f"u{k}" for k in range(3) for _ in range(3)]
    inter = pa.table({"user_id": users, "item_id": ids[:9],
                      "ts": pa.array(np.arange(9, dtype="int64"), pa.timestamp("ms", tz="UTC"))})
    write_catalogue(uri, items, inter, {"source": "test", "simulated": False}, categories=CATEGORIES)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    uri = str(tmp_path_factory.mktemp("cat") / "catalogue")
    tiny_catalogue(uri)
    return uri


def test_two_workers_retry_after_injected_failure_then_resume_by_run_name(ray_local, catalogue, tmp_path, capsys):
    from fashiongen.training.gan import train_gan

    overrides = [f"lake_uri={tmp_path / 'lake'}", f"train.storage_path={tmp_path / 'train'}", "train.num_workers=2",
                 "train.max_failures=1", "gan.batch_size=16", "gan.epochs=2", "gan.sample_columns=4", "gan.ema_decay=0.9"]
    cfg = load_config(None, overrides + ["gan.fail_at_epoch=1"])
    result = train_gan(cfg, catalogue)

    lake = tmp_path / "lake"
    out = lake / "gan" / result.run_name
    assert (out / "_injected_failure_epoch_1").exists()  # the failure happened ...
    assert result.epochs == 2 and result.metrics["epoch"] == 1
    assert result.metrics["start_epoch"] == 1  # ... and the retry resumed from epoch 0's checkpoint
    assert result.metrics["images"] == 256 // 32 * 32  # both workers, full batches only
    assert np.isfinite(result.metrics["d_loss"]) and result.metrics["images_per_s"] > 0
    for epoch in (0, 1):
        grid = decode_image((out / "samples" / f"epoch_{epoch:03d}.png").read_bytes())
        assert grid.shape == (2 * SIZE, 4 * SIZE, 1)  # one row per category
    assert result.model_uri == str(lake / "models" / "generator.pt")
    model = load_generator(result.model_uri)
    assert model.image_shape == (1, SIZE, SIZE) and model.categories == CATEGORIES and model.latent_dim == 64
    first = model.generate(torch.zeros(1, 64), torch.tensor([0]))

    # A rerun with the same name and more epochs resumes after epoch 2, here on one worker (through the CLI command).
    assert COMMANDS["train-gan"][0] == gan_command.__name__
    parser = argparse.ArgumentParser()
    gan_command.add_arguments(parser)
    args = parser.parse_args(["--catalogue", catalogue])
    rerun = overrides[:-3] + ["gan.epochs=3", "train.num_workers=1"] + overrides[-2:]
    assert gan_command.run(load_config(None, rerun), args) == 0
    printed = capsys.readouterr().out
    assert "epochs trained: 3 (this run started at epoch 3)" in printed and result.run_name in printed
    resumed = load_generator(result.model_uri)
    assert (out / "samples" / "epoch_002.png").exists()
    assert not torch.equal(resumed.generate(torch.zeros(1, 64), torch.tensor([0])), first)


def test_run_config_passes_an_s3_filesystem_and_a_schemeless_path(s3_server):  # noqa: ARG001 (sets AWS_*)
    from fashiongen.training.gan import _run_config

    cfg = load_config(None, ["train.storage_path=s3://lake/train", "train.max_failures=3", "train.num_to_keep=4"])
    run = _run_config(cfg, "gan-x")
    assert run.storage_path == "lake/train" and run.name == "gan-x"
    assert run.storage_filesystem.type_name == "s3"
    assert run.failure_config.max_failures == 3 and run.checkpoint_config.num_to_keep == 4


def test_settings_take_architecture_defaults_and_the_catalogue_shape():
    from fashiongen.training.gan import default_run_name, resolve_settings

    meta = {"image": {"mode": "RGB", "width": 40, "height": 40}, "categories": ["a", "b"]}
    official = resolve_settings(load_config(None, ["gan.arch=official"]).gan, meta)
    assert (official["z_dim"], official["lr"], official["batch_size"], official["epochs"]) == (256, 1e-4, 16, 30)
    assert official["image_shape"] == [3, 64, 64] and official["categories"] == ["a", "b"]
    small = resolve_settings(load_config(None, ["gan.z_dim=32", "gan.epochs=1"]).gan, meta)
    assert small["image_shape"] == [3, 40, 40] and small["z_dim"] == 32 and small["epochs"] == 1
    assert default_run_name("cat", small) == default_run_name("cat/", dict(small, epochs=9))  # epochs: resumable
    assert default_run_name("cat", small) != default_run_name("cat", official)
