"""The quiet console's settings: environment defaults a user's own values override, and the local workers' hook."""
from __future__ import annotations

import importlib.util
import logging
import os

from fashiongen import runtime


def test_quiet_console_sets_defaults_and_keeps_a_users_own_values(monkeypatch):
    monkeypatch.delenv("RAY_TRAIN_ENABLE_PRINT_PATCH", raising=False)
    monkeypatch.setenv("RAY_DATA_LOGGING_CONFIG", "/my/logging.yaml")
    runtime.quiet_ray_console()
    assert os.environ["RAY_TRAIN_ENABLE_PRINT_PATCH"] == "0"  # one line per print in a training worker
    assert os.environ["RAY_DATA_LOGGING_CONFIG"] == "/my/logging.yaml"
    assert runtime.RAY_DATA_LOGGING.is_file()


def test_ray_data_logging_keeps_every_record_in_the_file_and_warnings_on_the_console():
    import yaml

    config = yaml.safe_load(runtime.RAY_DATA_LOGGING.read_text())
    assert config["handlers"]["console"]["level"] == "WARNING"
    assert config["loggers"]["ray.data"]["level"] == "DEBUG"
    assert config["loggers"]["ray.data"]["handlers"] == ["file", "console"]


def test_local_worker_hook_quiets_ray_trains_chatter_by_module_and_by_file_path():
    runtime.quiet_local_worker()
    for module, level in runtime.LOCAL_WORKER_QUIET.items():
        assert logging.getLogger(module).level == level
        assert logging.getLogger(importlib.util.find_spec(module).origin).level == level
    assert runtime.train_logging().log_level == "WARNING"
