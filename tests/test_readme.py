"""README "Reading the lake": its recipes run as written against a small published lake (local and moto S3), read
complete runs only, and its DDL lists exactly DESIGNS_SCHEMA's columns with matching types."""
from __future__ import annotations

import re
import shlex
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from fashiongen import cli
from fashiongen.lake import DESIGNS_SCHEMA, write_designs
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
    """Run a recipe with its `lake = "lake"` pointed at `lake` (the recipes name the local default)."""
    assert 'lake = "lake"' in block, "recipes start from the default lake folder"
    namespace: dict = {}
    exec(compile(block.replace('lake = "lake"', f"lake = {lake!r}", 1), str(README), "exec"), namespace)
    return namespace


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path, monkeypatch) -> str:
    """Two complete runs and one unfinished date; the working directory holds the local lake as `lake/`."""
    monkeypatch.chdir(tmp_path)
    uri = "lake"
    if request.param == "s3":
        request.getfixturevalue("s3_server")
        uri = f"s3://lake/readme-{uuid.uuid4().hex[:12]}"
    write_complete(uri, D1, USERS[:1])
    write_complete(uri, D2, USERS)
    write_designs(fake_designs(PARTIAL, USERS), uri, PARTIAL)
    return uri


def test_duckdb_recipes(lake, capsys):
    recipes = subsections()["DuckDB"]
    (python,) = code_blocks(recipes, "python")
    con = run_python(python, lake)["con"]
    assert "2026-08-19" in capsys.readouterr().out  # .show() printed the aggregate
    assert con.sql("SELECT DISTINCT run_date FROM designs ORDER BY 1").fetchall() == [(D1,), (D2,)]
    if lake.startswith("s3://"):
        return  # the plain-SQL recipe is for a local lake (the CLI needs httpfs for S3)
    import duckdb

    (sql,) = code_blocks(recipes, "sql")
    rows = duckdb.connect().sql(sql).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(D1, "Dress", 2), (D1, "Shirt", 2), (D2, "Dress", 4),
                                                  (D2, "Shirt", 4)]


def test_polars_recipe(lake):
    import polars as pl

    (python,) = code_blocks(subsections()["Polars"], "python")
    namespace = run_python(python, lake)
    assert namespace["designs"].select(pl.col("run_date").unique().sort()).collect()["run_date"].to_list() == [D1, D2]
    mine = namespace["mine"]
    assert set(mine["user_id"]) == {"u000042"} and mine.height == 4 and mine["run_date"].dtype == pl.String


def test_pyarrow_recipe(lake):
    (python,) = code_blocks(subsections()["pyarrow"], "python")
    namespace = run_python(python, lake)
    assert namespace["latest"].num_rows == 8  # D2: 2 users x 2 categories x 2 ranks
    history = namespace["history"]
    assert history.schema.field("run_date").type == pa.string()
    assert sorted(set(history.column("run_date").to_pylist())) == [D1, D2] and history.num_rows == 12


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
    assert "designs of u000042 (run 2026-08-20, model m1)" in out


# --- DDL -------------------------------------------------------------------------------------------------------

HIVE_TYPES = {pa.string(): "string", pa.int32(): "int", pa.float32(): "float", pa.binary(): "binary"}
TRINO_TYPES = {pa.string(): "varchar", pa.int32(): "integer", pa.float32(): "real", pa.binary(): "varbinary"}


def engine_type(typ: pa.DataType, names: dict, array: str) -> str:
    if pa.types.is_list(typ):
        return array.format(engine_type(typ.value_type, names, array))
    return names[typ]


def ddl_columns(block: str) -> list[tuple[str, str]]:
    body = re.search(r"CREATE (?:EXTERNAL )?TABLE \S+ \((.*?)\n\)", block, flags=re.DOTALL).group(1)
    return [tuple(line.strip().rstrip(",").split(" ", 1)) for line in body.strip().splitlines()]


def test_hive_ddl_matches_the_schema():
    blocks = [b for b in code_blocks(subsections()["Spark, Athena and Trino"], "sql") if "CREATE EXTERNAL TABLE" in b]
    (block,) = blocks
    expected = [(f.name, engine_type(f.type, HIVE_TYPES, "array<{}>")) for f in DESIGNS_SCHEMA if f.name != "run_date"]
    assert ddl_columns(block) == expected
    assert "PARTITIONED BY (run_date string)" in block and "STORED AS PARQUET" in block
    assert re.search(r"LOCATION 's3://[^']+/designs/'", block)


def test_trino_ddl_matches_the_schema():
    (block,) = [b for b in code_blocks(subsections()["Spark, Athena and Trino"], "sql") if "external_location" in b]
    data = [(f.name, engine_type(f.type, TRINO_TYPES, "array({})")) for f in DESIGNS_SCHEMA if f.name != "run_date"]
    assert ddl_columns(block) == [*data, ("run_date", "varchar")]  # Trino: partition columns last
    assert "partitioned_by = ARRAY['run_date']" in block and "format = 'PARQUET'" in block
    assert re.search(r"external_location = 's3://[^']+/designs/'", block)


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
