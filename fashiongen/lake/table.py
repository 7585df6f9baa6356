"""The designs table: an Apache Iceberg table `<namespace>.designs` located at `<lake>/designs`, partitioned by
`run_date`, one snapshot per published run date (`publish.publish_run`). Any Iceberg engine reads it; a reader never
sees a run that was not committed.

    lake = Lake.of(cfg)                   # or Lake("lake"): a local lake with the embedded catalog
    table = lake.table()                  # pyiceberg Table, or None before the first publish
    table.scan(row_filter="user_id == 'u000042'").to_arrow()

The catalog (`iceberg.*` settings): a local lake keeps an embedded SQLite catalog at `<lake>/_catalog/iceberg.db`;
`iceberg.catalog_uri` names any SQL catalog; otherwise (an s3:// lake) the catalog is pyiceberg's own settings for
`iceberg.catalog_name` (REST, Glue, Hive or SQL: ~/.pyiceberg.yaml or PYICEBERG_CATALOG__<NAME>__<KEY>), so no
credential ever sits in a fashiongen file. S3 is reached with the AWS chain and AWS_ENDPOINT_URL (`storage`).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fashiongen import storage
from fashiongen.config import IcebergConfig
from fashiongen.lake.layout import DESIGNS_SCHEMA, LakeError
from fashiongen.lake.paths import LakePaths

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from fashiongen.config import Config

TABLE_NAME = "designs"
TABLE_FORMAT = "fashiongen.designs/2"  # table property naming what fashiongen writes (1 was the Hive layout)
PARTITION_FIELD = "run_date"


@dataclass(frozen=True)
class Lake:
    """A lake root and the catalog of its designs table; the functions of `fashiongen.lake` take one (or a local
    lake's path, which means the embedded catalog)."""

    uri: str
    iceberg: IcebergConfig = field(default_factory=IcebergConfig)

    @classmethod
    def of(cls, cfg: "Config") -> "Lake":
        return cls(cfg.lake_uri, cfg.iceberg)

    @property
    def paths(self) -> LakePaths:
        return LakePaths(self.uri)

    @property
    def identifier(self) -> tuple[str, str]:
        return (self.iceberg.namespace, TABLE_NAME)

    @property
    def table_name(self) -> str:
        return ".".join(self.identifier)

    @property
    def embedded(self) -> bool:
        """Whether the catalog is the SQLite file inside this (local) lake."""
        return not self.iceberg.catalog_uri and not storage.is_s3(self.uri)

    def run_label(self, run_date: str) -> str:
        """How messages and summaries name one run: the table and its partition."""
        return f"{self.table_name} (run_date={run_date})"

    def catalog(self) -> "Catalog":
        return _catalog(self.uri, self.iceberg.catalog_uri, self.iceberg.catalog_name, storage.endpoint_url())

    def table(self) -> "Table | None":
        """The designs table (checked to be fashiongen's), or None when nothing was published yet."""
        from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

        if self.embedded and not storage.exists(self.paths.iceberg_catalog()):
            return None  # reading never creates a lake
        try:
            table = self.catalog().load_table(self.identifier)
        except (NoSuchTableError, NoSuchNamespaceError):
            return None
        check_table(table, self.table_name)
        if table.location().rstrip("/") != table_location(self):
            raise LakeError(f"Iceberg table {self.table_name} of catalog {self.iceberg.catalog_name!r} belongs to the "
                            f"lake at {storage.redact(table.location())}, not {storage.redact(self.uri)}: give this "
                            "lake a namespace of its own (iceberg.namespace)")
        return table

    def create_table(self) -> "Table":
        """The designs table, created (empty, at <lake>/designs) when missing; new nullable columns of
        DESIGNS_SCHEMA are added to an older table."""
        from pyiceberg.exceptions import TableAlreadyExistsError
        from pyiceberg.table import TableProperties

        table = self.table()
        if table is None:
            catalog = self.catalog()
            catalog.create_namespace_if_not_exists(self.iceberg.namespace)
            try:  # one atomic create: schema, partition spec and name mapping, or no table at all
                tx = catalog.create_table_transaction(self.identifier, schema=DESIGNS_SCHEMA,
                                                      location=table_location(self),
                                                      properties={"fashiongen.format": TABLE_FORMAT,
                                                                  "format-version": "2"})
                with tx.update_spec() as spec:
                    spec.add_identity(PARTITION_FIELD)
                tx.set_properties(**{TableProperties.DEFAULT_NAME_MAPPING:
                                     tx.table_metadata.schema().name_mapping.model_dump_json()})
                tx.commit_transaction()
            except TableAlreadyExistsError:  # another publisher created it first
                pass
            table = self.catalog().load_table(self.identifier)
        missing = [f.name for f in DESIGNS_SCHEMA if f.name not in table.schema().column_names]
        if missing:
            with table.update_schema() as update:
                update.union_by_name(DESIGNS_SCHEMA)
            table = self.catalog().load_table(self.identifier)
        return table


def as_lake(lake: "Lake | str") -> Lake:
    """A Lake from a Lake or a lake URI (which means the default catalog settings)."""
    return lake if isinstance(lake, Lake) else Lake(str(lake))


def committed_dates(lake: "Lake | str") -> list[str]:
    """Run dates the table's current snapshot holds (ascending)."""
    table = as_lake(lake).table()
    if table is None or table.current_snapshot() is None:
        return []
    partitions = table.inspect.partitions(snapshot_id=table.current_snapshot().snapshot_id)
    return sorted(p["run_date"] for p in partitions.column("partition").to_pylist())


def table_location(lake: Lake) -> str:
    return file_uri(lake.paths.designs())


def file_uri(uri: str) -> str:
    """What Iceberg metadata records for a lake URI: s3:// as is, local paths as absolute file:// URIs."""
    return uri if storage.is_s3(uri) else "file://" + os.path.abspath(storage.local_path(uri) or uri)


def check_table(table: "Table", name: str) -> None:
    """LakeError when the table in the catalog is not a fashiongen designs table (a foreign or damaged one)."""
    columns = set(table.schema().column_names)
    core = [f.name for f in DESIGNS_SCHEMA if not f.nullable]
    lacking = [c for c in core if c not in columns]
    spec = table.spec()
    partitioned = [table.schema().find_column_name(f.source_id) for f in spec.fields
                   if str(f.transform) == "identity"]
    if table.properties.get("fashiongen.format") != TABLE_FORMAT or lacking or partitioned != [PARTITION_FIELD]:
        if lacking:
            why = f"lacks columns {lacking}"
        elif partitioned != [PARTITION_FIELD]:
            why = f"is partitioned by {partitioned or 'nothing'}, not {PARTITION_FIELD}"
        else:
            why = f"has fashiongen.format={table.properties.get('fashiongen.format')!r}, not {TABLE_FORMAT!r}"
        raise LakeError(f"Iceberg table {name} is not a fashiongen designs table: it {why}. Point "
                        "iceberg.namespace at a namespace of its own, or drop that table")


def _io_properties(endpoint: str | None) -> dict[str, str]:
    """pyiceberg FileIO settings for S3: the endpoint and region only (credentials: the AWS chain, never passed)."""
    if not endpoint:
        return {}
    return {"s3.endpoint": endpoint, "s3.region": storage.region()}


def _catalog(lake_uri: str, catalog_uri: str, name: str, endpoint: str | None) -> "Catalog":
    from pyiceberg.catalog import load_catalog
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.utils.config import Config

    io = _io_properties(endpoint)
    warehouse = file_uri(lake_uri)
    if catalog_uri:
        try:
            return SqlCatalog(name, uri=catalog_uri, warehouse=warehouse, **io)
        except Exception as exc:  # SQLAlchemy's errors: a driver missing, a database that cannot be opened
            raise LakeError(f"cannot open the Iceberg catalog iceberg.catalog_uri={storage.redact(catalog_uri)!r}: "
                            f"{storage.redact(str(exc)).splitlines()[0]} (check the URI, that its folder or server "
                            "exists, and its driver is installed)") from None
    if not storage.is_s3(lake_uri):
        path = storage.local_path(LakePaths(lake_uri).iceberg_catalog())
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return SqlCatalog(name, uri=f"sqlite:///{path}", warehouse=warehouse, **io)
    try:  # pyiceberg's settings read now (its own copy is read once, at import)
        return load_catalog(name, **{**(Config().get_catalog_config(name) or {}), **io})
    except Exception as exc:  # pyiceberg raises ValueError, NotInstalledError... for a catalog it cannot build
        raise LakeError(f"no Iceberg catalog for the s3 lake {storage.redact(lake_uri)!r}: configure pyiceberg's "
                        f"catalog {name!r} (~/.pyiceberg.yaml, or PYICEBERG_CATALOG__{name.upper()}__TYPE and __URI), "
                        f"or set iceberg.catalog_uri to a SQL catalog ({storage.redact(str(exc))})") from None


PROPERTY_PREFIX = "fashiongen."
_JSON_FIELDS = ("attachments", "properties")
_INT_FIELDS = ("rows", "pairs")
RECORD_FIELDS = ("run_date", "model_version", "rows", "pairs", "created_at", "fashiongen_version", "config_digest",
                 "attempt", *_JSON_FIELDS)


def snapshot_properties(record: dict) -> dict[str, str]:
    """A run's record (what `publish_run` commits) as the string properties of its snapshot: `fashiongen.<field>`."""
    return {PROPERTY_PREFIX + k: json.dumps(record[k], sort_keys=True) if k in _JSON_FIELDS else str(record[k])
            for k in RECORD_FIELDS}


def record_from_snapshot(summary: dict[str, str], where: str) -> dict:
    """The run record a snapshot's properties carry; LakeError naming the snapshot when they are not fashiongen's."""
    missing = [k for k in RECORD_FIELDS if PROPERTY_PREFIX + k not in summary]
    if missing:
        raise LakeError(f"{where} lacks the properties {[PROPERTY_PREFIX + k for k in missing]}: it was not "
                        "committed by fashiongen; rerun that date with force=true")
    record: dict = {}
    try:
        for k in RECORD_FIELDS:
            value = summary[PROPERTY_PREFIX + k]
            record[k] = json.loads(value) if k in _JSON_FIELDS else int(value) if k in _INT_FIELDS else value
    except ValueError as exc:
        raise LakeError(f"{where} has an unreadable fashiongen property ({exc}); rerun that date with "
                        "force=true") from None
    return record
