"""Contact sheets, trajectory strips and the `fashiongen design` command end to end."""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

from fashiongen import storage
from fashiongen.cli import COMMANDS, build_parser
from fashiongen.config import load_config
from fashiongen.data.contract import load_catalogue
from fashiongen.data.images import to_tensor_range
from fashiongen.errors import FashiongenError
from fashiongen.commands import design
from fashiongen.generation.pictures import SheetRow, contact_sheet, save_png, trajectory_strip
from fashiongen.lake.layout import id_key
from fashiongen.models.gan import ConditionalGAN
from fashiongen.training.classifier import train_classifiers
from fixtures import BAR_CATEGORIES, BAR_SIZE, bar_catalogue
from test_engine import TinyVisualRecommender

def test_contact_sheet_places_real_and_generated_tiles(tmp_path):
    red = np.zeros((3, 8, 8, 3), np.uint8)
    red[..., 0] = 255
    grey = np.full((3, 8, 8, 1), 200, np.uint8)
    rows = [SheetRow("tops", red, np.array([1.5, 1.0, np.nan]), grey, np.array([2.0, 1.9, 1.8]),
                     real_truth=np.array([0.1, 0.2, np.nan]), generated_truth=np.array([0.3, 0.3, 0.3]))]
    sheet = contact_sheet("user u1", rows, tile=32)
    assert sheet.width > 6 * 32 and sheet.height > 32
    pixels = np.asarray(sheet)
    # columns crossed by a whole tile (32 rows of its colour; anti-aliased text never makes such a run)
    red_cols = np.flatnonzero(((pixels[..., 0] == 255) & (pixels[..., 1] == 0)).sum(axis=0) >= 32)
    grey_cols = np.flatnonzero((pixels == 200).all(axis=2).sum(axis=0) >= 32)
    assert len(red_cols) == 2 * 32  # the NaN-scored third real slot stays empty
    assert red_cols.max() < grey_cols.min() and len(grey_cols) == 3 * 32
    uri = save_png(sheet, str(tmp_path / "sub" / "sheet.png"))
    assert Image.open(uri).size == sheet.size


def test_trajectory_strip_grid():
    images = np.zeros((2, 4, 8, 8, 1), np.uint8)
    images[1, 3] = 255
    strip = trajectory_strip("t", images, np.arange(8.0).reshape(2, 4), tile=20)
    pixels = np.asarray(strip)
    white_rows = (pixels == 255).all(axis=2).sum(axis=1)
    assert strip.width >= 4 * 20 and strip.height >= 2 * 20
    # only one tile (restart 1, step 3) is fully white: its 20 pixel rows have the widest white run
    assert (np.asarray(trajectory_strip("t", images * 0, np.zeros((2, 4)), tile=20)) != pixels).any()
    assert white_rows.max() > white_rows.min()


@pytest.fixture(scope="module")
def lake(tmp_path_factory, shared_catalogue):
    root = tmp_path_factory.mktemp("lake")
    catalogue_uri = shared_catalogue(bar_catalogue, num_items=40)
    catalogue = load_catalogue(catalogue_uri)
    images = torch.from_numpy(to_tensor_range(catalogue.images))
    TinyVisualRecommender(num_users=catalogue.num_users, image_shape=(1, BAR_SIZE, BAR_SIZE),
                          catalogue=images).save(storage.join(str(root), "models", "recommender", "dvbpr.pt"))
    torch.manual_seed(0)
    gan = ConditionalGAN("small", 8, BAR_CATEGORIES, (1, BAR_SIZE, BAR_SIZE))
    gan.save(storage.join(str(root), "models", "generator.pt"))
    train_classifiers(load_config(None, [f"lake_uri={root}", f"data.catalogue_uri={catalogue_uri}"]))
    return root, catalogue_uri


def test_design_command_writes_sheet_trajectories_and_item_redesign(lake, capsys):
    root, catalogue_uri = lake
    assert "design" in COMMANDS
    args = build_parser().parse_args(["design", "--user", "u1", "--from-item", "item-0003"])
    cfg = load_config(None, [f"lake_uri={root}", f"data.catalogue_uri={catalogue_uri}", "run_date=2024-05-01",
                             "design.restarts=4", "design.steps=3", "design.invert_steps=20",
                             "design.invert_restarts=2"])
    assert design.run(cfg, args) == 0
    printed = capsys.readouterr().out.split()
    names = sorted(p.rsplit("/", 1)[1] for p in printed)
    item_file = f"item_{id_key('item', 'item-0003')}.png"
    assert names == sorted([item_file, "sheet.png", "trajectory_0_left.png", "trajectory_1_right.png"])
    # ids never become paths: the user's folder is a digest of the id, under pictures/ (not the designs table)
    assert all(p.startswith(str(root / "pictures" / f"user={id_key('user', 'u1')}")) for p in printed)
    strip = Image.open(next(p for p in printed if "trajectory_0_left" in p))
    assert strip.width >= 4 * 64 and strip.height >= 4 * 64  # 4 steps (initial + 3) x 4 restarts


def test_design_command_errors(lake):
    root, catalogue_uri = lake
    cfg = load_config(None, [f"lake_uri={root}", f"data.catalogue_uri={catalogue_uri}", "design.steps=1",
                             "design.restarts=2"])
    with pytest.raises(FashiongenError, match="unknown user_id.*nobody"):
        design.run(cfg, argparse.Namespace(user="nobody", categories="", from_item="", device="cpu"))
    with pytest.raises(FashiongenError, match="hats"):
        design.run(cfg, argparse.Namespace(user="u1", categories="hats", from_item="", device="cpu"))
    missing = load_config(None, [f"lake_uri={root / 'elsewhere'}", f"data.catalogue_uri={catalogue_uri}"])
    with pytest.raises(FashiongenError, match="no checkpoint"):
        design.run(missing, argparse.Namespace(user="u1", categories="", from_item="", device="cpu"))
    no_guard = load_config(None, [f"lake_uri={root / 'elsewhere'}", f"data.catalogue_uri={catalogue_uri}",
                                  f"generation.recommender_uri={root}/models/recommender/dvbpr.pt",
                                  f"generation.generator_uri={root}/models/generator.pt"])
    with pytest.raises(FashiongenError, match="no guard category classifier at .*fashiongen train-classifiers"):
        design.run(no_guard, argparse.Namespace(user="u1", categories="", from_item="", device="cpu"))
    assert not (root / "elsewhere").exists()  # design trains nothing
