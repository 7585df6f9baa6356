"""`fashiongen train-classifiers`: both category classifiers once per catalogue, a no-op when current, retrained
when the catalogue changed; the design paths load them and refuse with one line when one is missing."""
from __future__ import annotations

import pytest

from fashiongen import storage
from fashiongen.cli import main
from fashiongen.config import load_config
from fashiongen.data.contract import read_meta
from fashiongen.lake.paths import CLASSIFIER_ROLES, LakePaths
from fashiongen.models.classifier import load_catalogue_classifier, trained_on
from fashiongen.models.contract import CheckpointError
from fixtures import bar_catalogue


def test_trains_both_roles_once_per_catalogue_and_again_when_it_changes(tmp_path, shared_catalogue, capsys):
    catalogue = shared_catalogue(bar_catalogue, num_items=40)
    args = [f"lake_uri={tmp_path / 'lake'}", f"data.catalogue_uri={catalogue}"]
    assert main(["train-classifiers", *args]) == 0
    paths = LakePaths.of(load_config(None, args))
    uris = {role: paths.classifier_model(role) for role in CLASSIFIER_ROLES}
    printed = capsys.readouterr().out
    assert all(f"{role} category classifier: {uri}" in printed for role, uri in uris.items())
    first = {role: storage.read_bytes(uri) for role, uri in uris.items()}
    assert first["judge"] != first["guard"]  # trained apart (another seed): the guard is never the judge

    assert main(["train-classifiers", *args]) == 0  # current: nothing retrained
    assert {role: storage.read_bytes(uri) for role, uri in uris.items()} == first

    other = shared_catalogue(bar_catalogue, num_items=60)  # another catalogue in the same lake
    record = trained_on(read_meta(other))
    with pytest.raises(CheckpointError, match=r"trained on another catalogue \(40 items\).*train-classifiers"):
        load_catalogue_classifier(uris["guard"], record, "guard")
    assert main(["train-classifiers", f"lake_uri={tmp_path / 'lake'}", f"data.catalogue_uri={other}"]) == 0
    assert load_catalogue_classifier(uris["guard"], record, "guard").meta["items"] == 60


def test_each_role_has_its_recipe_and_a_guard_of_another_recipe_is_retrained(tmp_path, shared_catalogue):
    from fashiongen.data.contract import load_catalogue
    from fashiongen.models.classifier import load_classifier, save_classifier, train_classifier
    from fashiongen.training.classifier import RECIPE

    catalogue = shared_catalogue(bar_catalogue, num_items=40)
    args = [f"lake_uri={tmp_path / 'lake'}", f"data.catalogue_uri={catalogue}"]
    assert main(["train-classifiers", *args]) == 0
    paths = LakePaths.of(load_config(None, args))
    for role in CLASSIFIER_ROLES:
        model = load_classifier(paths.classifier_model(role))
        assert model.config["width"] == RECIPE[role]["width"] and model.meta["epochs"] == RECIPE[role]["epochs"]
    assert RECIPE["guard"]["width"] < RECIPE["judge"]["width"]  # the guard runs at every search step

    # a lake from before the recipes: both classifiers 32 wide, 3 epochs, no epochs in their meta
    items = load_catalogue(catalogue)
    for role in CLASSIFIER_ROLES:
        save_classifier(train_classifier(items.images, items.item_category, epochs=1, seed=0),
                        paths.classifier_model(role), meta=trained_on(read_meta(catalogue)))
    judge_bytes = storage.read_bytes(paths.classifier_model("judge"))
    assert main(["train-classifiers", *args]) == 0
    again = load_classifier(paths.classifier_model("guard"))
    assert again.config["width"] == RECIPE["guard"]["width"] and again.meta["epochs"] == RECIPE["guard"]["epochs"]
    assert storage.read_bytes(paths.classifier_model("judge")) == judge_bytes  # the judge's recipe: kept

