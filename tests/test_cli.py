"""The `fashiongen` command line as an operator meets it: help for every command and job, config mistakes, missing
inputs and unreachable storage each end in one `error: ...` line naming the fix and exit code 2, never a traceback."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fashiongen import cli

ROOT = Path(__file__).resolve().parents[1]
JOBS = sorted((ROOT / "jobs").glob("*.py"))
CONSOLE_SCRIPT = Path(sys.executable).parent / "fashiongen"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """cli.main in-process: (exit code, stdout, stderr)."""
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_process(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def job_command(job: Path) -> str:
    """The subcommand a jobs/ script runs, read from its `main(["<command>", *sys.argv[1:]])` call."""
    found = re.findall(r'main\(\[\s*"([\w-]+)"', job.read_text())
    assert len(found) == 1, f"{job.name} should call main([\"<command>\", *sys.argv[1:]]) exactly once"
    return found[0]


def write_yaml(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# --- help ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_prints_usage(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fashiongen {command} ")
    assert "--config" in out and "key=value" in out
    assert cli.COMMANDS[command][1] in " ".join(out.split())  # the description (argparse wraps it)


def test_help_imports_neither_torch_nor_ray(tmp_path):
    code = ("import sys; from fashiongen.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'ray', 'pandas') if m in sys.modules))")
    result = run_process([sys.executable, "-c", code], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_overrides_may_follow_a_commands_options(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "lake", "runs", f"lake_uri={tmp_path / 'lake'}")
    assert code == 0 and str(tmp_path / "lake") in out
    code, out, err = run_cli(capsys, "lake", "show", "--user", "u0", f"lake_uri={tmp_path / 'lake'}")
    assert code == 2 and str(tmp_path / "lake") in err  # the override reached the command: its lake has no runs
    with pytest.raises(SystemExit) as exit_:
        cli.main(["lake", "runs", "--no-such-flag"])
    assert exit_.value.code == 2


def test_console_script_lists_every_command(tmp_path):
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT} missing: install the package (pip install -e .)"
    result = run_process([str(CONSOLE_SCRIPT), "--help"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: fashiongen ")
    listed = set(re.findall(r"^ {4}(\S+)", result.stdout, re.MULTILINE))
    assert listed == set(cli.COMMANDS)


@pytest.mark.parametrize("job", JOBS, ids=lambda job: job.name)
def test_every_job_prints_the_usage_of_its_command(job, tmp_path):
    command = job_command(job)
    assert command in cli.COMMANDS, f"{job.name} runs {command!r}, which is not a fashiongen command"
    result = run_process([sys.executable, str(job), "--help"], cwd=tmp_path)  # from anywhere, as `ray job submit`
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: fashiongen {command} ")


def test_job_rejects_a_bad_override_without_a_traceback(tmp_path):
    result = run_process([sys.executable, str(ROOT / "jobs" / "train_gan.py"), "nosuch.key=1"], cwd=tmp_path)
    assert result.returncode == 2
    assert "error: unknown config key 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written


# --- config ----------------------------------------------------------------------------------------------------

def test_config_file_then_overrides_reach_the_command(tmp_path, capsys):
    config = write_yaml(tmp_path / "c.yaml", f"lake_uri: {tmp_path / 'lake'}\n"
                                             f"data:\n  catalogue_uri: {tmp_path / 'from-file'}\n")
    code, _, err = run_cli(capsys, "evaluate", "--config", config)
    assert code == 2 and f"no catalogue at '{tmp_path / 'from-file'}'" in err
    code, _, err = run_cli(capsys, "evaluate", "--config", config, f"data.catalogue_uri={tmp_path / 'from-override'}")
    assert code == 2 and f"no catalogue at '{tmp_path / 'from-override'}'" in err and "from-file" not in err


@pytest.mark.parametrize("case, message", [
    ("unknown key", "error: unknown config key 'recommender.epoch' (known here: "),
    ("wrong type", "error: recommender.epochs: expected an integer, got 'three'"),
    ("malformed override", "error: override 'recommender.epochs' is not of the form key=value"),
    ("missing file", "does not exist (see configs/ for examples)"),
    ("invalid yaml", "is not valid YAML"),
    ("wrong type in file", "error: recommender.k: expected an integer, got [1]"),
])
def test_config_mistakes_are_one_clear_error(case, message, tmp_path, capsys):
    argv = {
        "unknown key": ["recommender.epoch=3"],
        "wrong type": ["recommender.epochs=three"],
        "malformed override": ["recommender.epochs"],
        "missing file": ["--config", str(tmp_path / "missing.yaml")],
        "invalid yaml": ["--config", write_yaml(tmp_path / "bad.yaml", "recommender: [1, 2")],
        "wrong type in file": ["--config", write_yaml(tmp_path / "k.yaml", "recommender:\n  k: [1]\n")],
    }[case]
    code, out, err = run_cli(capsys, "train-recommender", *argv, f"lake_uri={tmp_path / 'lake'}")
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert out == "" and not (tmp_path / "lake").exists()


# --- missing inputs --------------------------------------------------------------------------------------------

@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if a command starts Ray (these commands must check their inputs first)."""
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("the command started Ray before checking its inputs")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)


@pytest.mark.parametrize("command", ["train-recommender", "train-gan", "evaluate", "export", "design", "generate",
                                     "nightly"])
def test_missing_catalogue_says_run_prepare(command, tmp_path, capsys, no_ray):
    empty = tmp_path / "catalogue"
    empty.mkdir()
    extra = ["--user", "u1"] if command == "design" else []
    code, _, err = run_cli(capsys, command, *extra, f"data.catalogue_uri={empty}", f"lake_uri={tmp_path / 'lake'}",
                           f"train.storage_path={tmp_path / 'train'}")
    assert code == 2
    assert f"error: no catalogue at '{empty}'" in err and "run `fashiongen prepare` first" in err
    assert not (tmp_path / "lake").exists() and not (tmp_path / "train").exists()


@pytest.mark.parametrize("command", ["export", "evaluate", "generate", "nightly"])
def test_missing_model_says_train_first(command, tmp_path, capsys, shared_catalogue):
    catalogue = shared_catalogue(num_items=20, num_users=6, per_user=4)
    code, _, err = run_cli(capsys, command, f"data.catalogue_uri={catalogue}", f"lake_uri={tmp_path / 'lake'}")
    assert code == 2
    assert err.startswith("error: ") and "fashiongen train-recommender" in err and "first" in err
    assert str(tmp_path / "lake" / "models" / "recommender") in err


# --- storage ---------------------------------------------------------------------------------------------------

def closed_port() -> int:
    """A local TCP port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_s3_names_uri_and_endpoint_never_the_credentials(tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "AKIADUMMYKEYID0042",
                "AWS_SECRET_ACCESS_KEY": "dummy-secret-value-0042", "AWS_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"})
    config = write_yaml(tmp_path / "s3.yaml", "lake_uri: s3://some-bucket/lake\n"
                        f"iceberg:\n  catalog_uri: sqlite:///{tmp_path}/catalog.db\n")
    result = run_process([str(CONSOLE_SCRIPT), "lake", "--config", config, "runs"], cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert "s3://some-bucket/lake" in result.stderr
    assert f"cannot reach the S3 endpoint {endpoint} (AWS_ENDPOINT_URL)" in result.stderr
    for secret in ("AKIADUMMYKEYID0042", "dummy-secret-value-0042"):
        assert secret not in result.stdout + result.stderr


def test_missing_bucket_is_named(s3_server, tmp_path, capsys):
    config = write_yaml(tmp_path / "s3.yaml", "lake_uri: s3://no-such-bucket/lake\n"
                        f"iceberg:\n  catalog_uri: sqlite:///{tmp_path}/catalog.db\n")
    code, out, err = run_cli(capsys, "lake", "--config", config, "runs")
    assert code == 2 and out == ""
    assert f"bucket 'no-such-bucket' does not exist at {s3_server}" in err and "create it or fix the URI" in err


def test_lake_action_comes_before_overrides(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "lake", "runs", f"lake_uri={tmp_path / 'lake'}")
    assert code == 0 and f"no published runs in fashiongen.designs of {tmp_path / 'lake'}" in out
