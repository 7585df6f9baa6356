"""README "Reading the lake": its recipes run as written against a small published lake (local, and moto S3 with
pyiceberg's own catalog settings), read published runs only, and its column table is DESIGNS_SCHEMA."""
from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from fashiongen import cli
from fashiongen.lake import DESIGNS_SCHEMA, Lake, write_designs
from fixtures import fake_designs, write_complete

README = Path(__file__).resolve().parents[1] / "README.md"
D1, D2, PARTIAL = "2026-08-19", "2026-08-20", "2026-08-21"
USERS = ["u000041", "u000042"]  # the README's examples ask for u000042 and run 2026-08-20


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else len(text)]


def subsections() -> dict[str, str]:
    parts = re.split(r"^### (.+)$", section("Reading the lake"), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def run_python(block: str, lake: str) -> dict:
    """Run a recipe with its `Lake("lake")` pointed at `lake` (the recipes name the local default)."""
    assert 'lake = Lake("lake")' in block, "recipes start from the default lake folder"
    namespace: dict = {}
    exec(compile(block.replace('Lake("lake")', f"Lake({lake!r})", 1), str(README), "exec"), namespace)
    return namespace


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path, monkeypatch) -> str:
    """Two published runs and one unfinished date; the working directory holds the local lake as `lake/`. On S3
    the catalog comes from pyiceberg's own settings (environment variables), as the README says."""
    monkeypatch.chdir(tmp_path)
    uri = "lake"
    if request.param == "s3":
        request.getfixturevalue("s3_server")
        uri = f"s3://lake/readme-{uuid.uuid4().hex[:12]}"
        monkeypatch.setenv("PYICEBERG_CATALOG__FASHIONGEN__TYPE", "sql")
        monkeypatch.setenv("PYICEBERG_CATALOG__FASHIONGEN__URI", f"sqlite:///{tmp_path}/catalog.db")
    write_complete(Lake(uri), D1, USERS)
    write_complete(Lake(uri), D2, USERS)
    write_designs(fake_designs(PARTIAL, USERS), Lake(uri), PARTIAL)
    return uri


def test_pyiceberg_recipe(lake):
    (python,) = code_blocks(subsections()["pyiceberg"], "python")
    namespace = run_python(python, lake)
    assert namespace["latest"].num_rows == 8  # D2: 2 users x 2 categories x 2 ranks
    history = namespace["history"]
    assert sorted(set(history.column("run_date").to_pylist())) == [D1, D2] and history.num_rows == 16
    yesterday = namespace["yesterday"]
    assert set(yesterday.column("user_id").to_pylist()) == {"u000042"} and yesterday.num_rows == 4
    assert set(yesterday.column("run_date").to_pylist()) == {D1}
    assert set(namespace["as_it_was"].column("run_date").to_pylist()) == {D1}  # before D2 was committed
    assert namespace["record"]["rows"] == 8 and namespace["record"]["model_version"] == "m1"


def test_polars_recipe(lake):
    import polars as pl

    (python,) = code_blocks(subsections()["Polars"], "python")
    namespace = run_python(python, lake)
    assert namespace["designs"].select(pl.col("run_date").unique().sort()).collect()["run_date"].to_list() == [D1, D2]
    mine = namespace["mine"]
    assert set(mine["user_id"]) == {"u000042"} and mine.height == 8 and mine["run_date"].dtype == pl.String


def test_duckdb_recipe(lake, capsys):
    (python,) = code_blocks(subsections()["DuckDB"], "python")
    con = run_python(python, lake)["con"]
    assert "2026-08-19" in capsys.readouterr().out  # .show() printed the aggregate
    assert con.sql("SELECT DISTINCT run_date FROM designs ORDER BY 1").fetchall() == [(D1,), (D2,)]


def test_lake_command_examples(lake, capsys):
    (bash,) = code_blocks(subsections()["From the command line"], "bash")
    commands = [shlex.split(line.split("#")[0]) for line in bash.splitlines() if line.strip()]
    assert all(argv[:2] == ["fashiongen", "lake"] for argv in commands)
    config = Path("lake.yaml")
    config.write_text(f"lake_uri: {lake}\n")
    for argv in commands:
        if argv[2] == "sheet":
            continue  # needs the catalogue's images (tested in test_generate_job)
        assert cli.main([*argv[1:], "--config", str(config)]) == 0, argv
    out = capsys.readouterr().out
    assert f"| {D2} | 8 | 4 | m1 |" in out and PARTIAL not in out
    assert "designs of u000042 (run 2026-08-20, model m1)" in out and "migrated 0 run(s)" in out


def test_engine_recipes_name_the_table_the_jobs_commit_to():
    sql = "\n".join(code_blocks(subsections()["Spark, Athena and Trino"], "sql"))
    assert Lake("lake").table_name == "fashiongen.designs"
    assert sql.count("fashiongen.designs") >= 4 and "register_table" in sql
    assert re.search(r"table_location => 's3://[^']+/designs'", sql)


def test_column_table_matches_the_schema():
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", section("Reading the lake"), flags=re.MULTILINE)
    assert [name for name, _ in rows] == DESIGNS_SCHEMA.names
    for (name, typ), field in zip(rows, DESIGNS_SCHEMA):
        assert ("nullable" in typ) == field.nullable, name
        assert typ.split(",")[0].replace("\\", "") == readme_type(field.type), name


def readme_type(typ: pa.DataType) -> str:
    """How the README's column table writes an Arrow type: int32, float32, list<float32>."""
    if pa.types.is_list(typ):
        return f"list<{readme_type(typ.value_type)}>"
    return {pa.float32(): "float32"}.get(typ, str(typ))
