import pytest

from fashiongen.config import Config, ConfigError, from_dict, load_config, to_dict


def test_defaults_then_yaml_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("recommender:\n  epochs: 7\n  lr: 0.01\ntrain:\n  num_workers: 2\n")
    cfg = load_config(f, ["recommender.epochs=3", "train.use_gpu=true", "lake_uri=s3://b/x"])
    assert cfg.recommender.epochs == 3 and cfg.recommender.lr == 0.01
    assert cfg.train.num_workers == 2 and cfg.train.use_gpu is True
    assert cfg.lake_uri == "s3://b/x"


@pytest.mark.parametrize("override, message", [
    ("recommender.epoch=3", "unknown config key 'recommender.epoch'"),
    ("nosuch=1", "unknown config key 'nosuch'"),
    ("recommender.epochs=three", "recommender.epochs: expected an integer"),
    ("train.use_gpu=maybe", "train.use_gpu: expected true/false"),
    ("recommender.lr=fast", "recommender.lr: expected a number"),
    ("recommender=1", "recommender: expected a section"),
    ("epochs", "not of the form key=value"),
    ("recommender.user_model=mean", "recommender.user_model"),
    ("design.trust_region=-1", "design.trust_region"),
    ("design.trust_quantile=1.5", "design.trust_quantile"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("recommender: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("recommender:\n  k: [1]\n")
    with pytest.raises(ConfigError, match="recommender.k: expected an integer"):
        load_config(wrong)


def test_dict_round_trip():
    cfg = load_config(None, ["gan.z_dim=16"])
    assert from_dict(Config, to_dict(cfg)) == cfg


def test_shipped_config_files_load():
    from pathlib import Path

    files = sorted(Path(__file__).parents[1].glob("configs/*.yaml"))
    assert files, "configs/ should ship at least the default config"
    for f in files:
        load_config(f)


def test_relative_local_paths_become_absolute_and_uris_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["lake_uri=lake", "data.catalogue_uri=s3://bucket/catalogue", "train.storage_path=file:///x"])
    assert cfg.lake_uri == str(tmp_path / "lake")  # Ray workers run elsewhere: they must see the same folder
    assert cfg.data.catalogue_uri == "s3://bucket/catalogue" and cfg.train.storage_path == "file:///x"
    assert cfg.generation.recommender_uri == ""  # empty means "the default", not the current directory
