"""Ray Train designer driver (#15): two DDP workers, a retry after an injected failure that ends with the weights of
an uninterrupted run, and the epoch's pair order each rank takes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fashiongen.config import load_config
from fashiongen.models.contract import read_checkpoint
from fashiongen.training.designer_steps import epoch_order
from fixtures import fmnist_catalogue_with_models, needs_fmnist


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    base = tmp_path_factory.mktemp("designer")
    cfg = load_config(None, [f"data.catalogue_uri={base}/catalogue", "data.max_items=200",
                             "simulation.num_users=24", "recommender.k=8"])
    rec_uri, gan_uri = str(base / "dvbpr.pt"), str(base / "generator.pt")
    fmnist_catalogue_with_models(cfg, rec_uri, gan_uri)
    return [f"data.catalogue_uri={cfg.data.catalogue_uri}", f"generation.recommender_uri={rec_uri}",
            f"generation.generator_uri={gan_uri}"]


def test_each_rank_takes_an_equal_disjoint_share_of_a_seeded_epoch_order():
    shares = [epoch_order(103, seed=0, epoch=2, rank=r, world=3) for r in range(3)]
    assert {len(s) for s in shares} == {34} and len(np.unique(np.concatenate(shares))) == 102
    np.testing.assert_array_equal(shares[1], epoch_order(103, 0, 2, 1, 3))  # a resumed epoch replays
    assert not np.array_equal(epoch_order(103, 0, 2), epoch_order(103, 0, 3))  # a new order each epoch


@needs_fmnist
@pytest.mark.slow
def test_a_retry_after_an_injected_failure_gives_the_weights_of_an_uninterrupted_run(ray_local, models, tmp_path,
                                                                                      monkeypatch):
    from fashiongen.training.designer import train_designer_on_lake

    def run(name: str):
        return train_designer_on_lake(load_config(None, [
            *models, f"lake_uri={tmp_path / 'lake'}", f"generation.designer_uri={tmp_path / name}.pt",
            f"train.storage_path={tmp_path / 'train'}", f"train.run_name={name}", "train.num_workers=2",
            "train.cpus_per_worker=1", "train.max_failures=1", "design.restarts=3", "design.category_guard=0",
            "designer.epochs=2", "designer.batch_pairs=16", "designer.hidden=32", "designer.validation=0.25"]))

    straight = run("straight")
    monkeypatch.setenv("FASHIONGEN_FAULTS", "designer.epoch=1")
    retried = run("retried")
    assert (tmp_path / "lake" / "designer" / "retried" / "_injected_failure_designer.epoch_1").exists()
    assert [m["start_epoch"] for m in retried.history][-1] == 1  # the retry resumed from epoch 0's checkpoint
    assert straight.history[-1]["start_epoch"] == 0 and straight.train_users + straight.validation_users == 24
    assert retried.validation_objective == pytest.approx(straight.validation_objective)
    a, b = read_checkpoint(straight.model_uri), read_checkpoint(retried.model_uri)
    assert a["meta"]["epochs_trained"] == b["meta"]["epochs_trained"] == 2
    for key in a["state"]:
        assert torch.equal(a["state"][key], b["state"][key]), key
