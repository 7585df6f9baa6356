"""Ray Train GAN driver: two workers, per-epoch checkpoints and grids, retry after an injected failure, resume by name."""
from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import torch

from fashiongen.cli import COMMANDS
from fashiongen.config import load_config
from fashiongen.data.images import decode_image
from fashiongen import storage
from fashiongen.models.contract import load_generator, read_checkpoint
from fashiongen.training.gan import held_out
from fashiongen.commands import train_gan as gan_command
from fixtures import BAR_CATEGORIES, BAR_SIZE, bar_catalogue

@pytest.fixture(scope="module")
def catalogue(shared_catalogue):
    return shared_catalogue(bar_catalogue, num_items=256)


@pytest.mark.slow
def test_two_workers_retry_after_injected_failure_then_resume_by_run_name(ray_local, catalogue, tmp_path, capsys,
                                                                         monkeypatch):
    from fashiongen.training.gan import train_gan

    overrides = [f"lake_uri={tmp_path / 'lake'}", f"train.storage_path={tmp_path / 'train'}", "train.num_workers=2",
                 "train.max_failures=1", "gan.batch_size=16", "gan.epochs=2", "gan.sample_columns=4", "gan.ema_decay=0.9"]
    monkeypatch.setenv("FASHIONGEN_FAULTS", "gan.epoch=1")
    result = train_gan(load_config(None, overrides), catalogue)
    monkeypatch.delenv("FASHIONGEN_FAULTS")

    lake = tmp_path / "lake"
    out = lake / "gan" / result.run_name
    assert (out / "_injected_failure_gan.epoch_1").exists()  # the failure happened ...
    assert result.epochs == 2 and result.metrics["epoch"] == 1
    assert result.metrics["start_epoch"] == 1  # ... and the retry resumed from epoch 0's checkpoint
    ids = [str(i) for i in storage.read_table(f"{catalogue}/items.parquet", columns=["item_id"]).column(0).to_pylist()]
    held = held_out(ids, 0.1, 0)
    assert 10 < held.sum() < 45  # gan.holdout=0.1 of the 256 items are never trained on ...
    assert result.metrics["images"] == (256 - held.sum()) // 32 * 32  # ... both workers, full batches only
    quality = json.loads((out / "quality" / "epoch_001.json").read_text())  # ... and each epoch is measured on them
    assert quality["real"] == "held-out images" and quality["n_real"] == held.sum()
    assert set(quality["per_category"]) == set(BAR_CATEGORIES) and quality["sampler"] == "EMA copy of G"
    assert {"fid", "kid", "class_consistency", "diversity_ratio"} <= set(quality["overall"])
    assert result.quality["epoch"] == 1 and "class_consistency" in result.quality_table
    assert (out / "quality" / "epoch_000.json").exists() and (out / "quality" / "final.txt").exists()
    assert np.isfinite(result.metrics["d_loss"]) and result.metrics["images_per_s"] > 0
    for epoch in (0, 1):
        grid = decode_image((out / "samples" / f"epoch_{epoch:03d}.png").read_bytes())
        assert grid.shape == (2 * BAR_SIZE, 4 * BAR_SIZE, 1)  # one row per category
    assert result.model_uri == str(lake / "models" / "generator.pt")
    model = load_generator(result.model_uri)
    assert model.image_shape == (1, BAR_SIZE, BAR_SIZE) and model.categories == BAR_CATEGORIES
    assert model.latent_dim == 64
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
    assert "## GAN quality after epoch 3" in printed and "class_consistency" in printed
    resumed = load_generator(result.model_uri)
    assert (out / "samples" / "epoch_002.png").exists()
    assert not torch.equal(resumed.generate(torch.zeros(1, 64), torch.tensor([0])), first)

    # The same recipe once more: the run has finished, so no worker group starts and the generator is the same.
    from ray.train.torch import TorchTrainer

    monkeypatch.setattr(TorchTrainer, "fit", lambda self: pytest.fail("a finished run was relaunched"))
    assert gan_command.run(load_config(None, rerun), args) == 0
    assert "epochs trained: 3 (all by an earlier run: nothing left to train)" in capsys.readouterr().out
    assert load_generator(result.model_uri).model_version == resumed.model_version


@pytest.mark.slow
def test_a_resume_after_an_injected_failure_gives_the_weights_of_an_uninterrupted_run(ray_local, catalogue, tmp_path,
                                                                                       monkeypatch):
    """One worker: the data order is seeded per epoch and the RNG state is checkpointed, so the retry from epoch 0's
    checkpoint redoes epoch 1 exactly (augmentation and EMA on: their randomness and state resume too)."""
    from fashiongen.training.gan import train_gan

    def run(name: str):
        return train_gan(load_config(None, [
            f"lake_uri={tmp_path / name}", f"train.storage_path={tmp_path / 'train'}", f"train.run_name={name}",
            "train.max_failures=1", "gan.batch_size=16", "gan.epochs=2", "gan.quality_per_category=0",
            "gan.ema_decay=0.9", "gan.augment=translation,cutout", "gan.loss=hinge"]), catalogue)

    straight = run("straight")
    monkeypatch.setenv("FASHIONGEN_FAULTS", "gan.epoch=1")
    retried = run("retried")
    assert (retried.metrics["start_epoch"], straight.metrics["start_epoch"]) == (1, 0)
    assert not (tmp_path / "retried" / "gan" / "retried" / "quality").exists()  # gan.quality_per_category=0: none
    a, b = read_checkpoint(straight.model_uri)["state"], read_checkpoint(retried.model_uri)["state"]
    for part in ("generator", "discriminator"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def test_run_config_passes_an_s3_filesystem_and_a_schemeless_path(s3_server):  # noqa: ARG001 (sets AWS_*)
    from fashiongen.training.ray_train import run_config

    cfg = load_config(None, ["train.storage_path=s3://lake/train", "train.max_failures=3", "train.num_to_keep=4"])
    run = run_config(cfg.train, "gan-x")
    assert run.storage_path == "lake/train" and run.name == "gan-x"
    assert run.storage_filesystem.type_name == "s3"
    assert run.failure_config.max_failures == 3 and run.checkpoint_config.num_to_keep == 4


def test_settings_take_architecture_defaults_and_the_catalogue_shape():
    from fashiongen.training.gan import default_run_name
    from fashiongen.training.gan_steps import GanSettings, resolve_settings

    meta = {"image": {"mode": "RGB", "width": 40, "height": 40}, "categories": ["a", "b"]}
    official = resolve_settings(load_config(None, ["gan.arch=official"]).gan, meta)
    paper = resolve_settings(load_config(None, ["gan.preset=paper", "gan.z_dim=32"]).gan, meta)
    assert (official.z_dim, official.lr, official.batch_size, official.epochs) == (256, 1e-4, 16, 30)
    assert official.image_shape == (3, 64, 64) and official.categories == ("a", "b")
    small = resolve_settings(load_config(None, ["gan.z_dim=32", "gan.epochs=1"]).gan, meta)
    assert small.image_shape == (3, 40, 40) and small.z_dim == 32 and small.epochs == 1
    assert default_run_name("cat", small) == default_run_name("cat/", dataclasses.replace(small, epochs=9))  # resumable
    assert default_run_name("cat", small) != default_run_name("cat", official)
    assert default_run_name("cat", paper) == "gan-small-e2ad5f46b4"  # the paper's: the name runs had before #13
    assert default_run_name("cat", small) != default_run_name("cat", paper)  # another recipe, another run
    assert default_run_name("cat", small) != default_run_name("cat", dataclasses.replace(small, loss="lsgan"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.epochs = 2  # type: ignore[misc]
    assert GanSettings.from_dict(small.to_dict()) == small


def test_the_held_out_items_are_a_stable_seeded_fraction():
    ids = [f"item-{k}" for k in range(4000)]
    mask = held_out(ids, 0.1, 0)
    assert 0.08 < mask.mean() < 0.12
    assert np.array_equal(mask, held_out(list(reversed(ids)), 0.1, 0)[::-1])  # by id, not by position
    assert not np.array_equal(mask, held_out(ids, 0.1, 1))  # another seed, another split
    assert (held_out(ids, 0.2, 0) >= mask).all()  # a larger fraction keeps the smaller one's items
    assert not held_out(ids, 0.0, 0).any()
