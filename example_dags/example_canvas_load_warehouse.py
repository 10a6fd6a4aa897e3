"""Load the landed Canvas tables into a warehouse, whenever the nightly export lands new files.

Scheduled on the asset alias ``canvas-provisioning``: each time
``example_canvas_nightly_provisioning`` lands its objects (one asset event per table), this DAG
runs and loads every landed CSV into a table ``canvas_<name>`` (``canvas_users``,
``canvas_enrollments``, ...). Triggered by hand instead, it loads the newest export it finds.
An export older than one already landed (an old night cleared and landed again) is not loaded:
it would replace newer tables with older data.

The warehouse is any database with a common.sql ``DbApiHook``, named by the connection
``canvas_warehouse`` (Postgres, Snowflake, BigQuery, ...): the DAG only uses ``run`` and
``insert_rows``. The demo uses a SQLite file (apache-airflow-providers-sqlite):
``{"conn_type": "sqlite", "host": "/path/warehouse.db"}``.

Rows are streamed: the CSV is read from object storage through the csv module and inserted in
batches of ``BATCH_ROWS`` with executemany, so no file is ever held in memory. Each table is
loaded into a ``<table>__loading`` table first and swapped in at the end, so readers never see
a half-loaded table. Every column is text: typing belongs to the models downstream (dbt, views).
The task returns (XCom) the rows loaded per table.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pendulum
from airflow.providers.common.compat.sdk import AirflowSkipException  # airflow.sdk.exceptions on 3.2+
from airflow.providers.common.sql.hooks.sql import DbApiHook
from airflow.sdk import DAG, AssetAlias, BaseHook, ObjectStoragePath, Variable, task

WAREHOUSE_CONN_ID = "canvas_warehouse"
ALIAS = AssetAlias("canvas-provisioning")
TABLE_PREFIX = "canvas_"
BATCH_ROWS = 20_000
# Identifiers come from file names and CSV headers, i.e. from outside: only plain ones are used
# in SQL, never quoted-through.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def warehouse_hook(conn_id: str = WAREHOUSE_CONN_ID) -> DbApiHook:
    conn = BaseHook.get_connection(conn_id)
    hook = conn.get_hook()
    if not isinstance(hook, DbApiHook):
        raise TypeError(f"Connection {conn_id!r} ({conn.conn_type}) has no SQL hook (DbApiHook)")
    return hook


def identifier(text: str, what: str) -> str:
    if not _IDENTIFIER.match(text):
        raise ValueError(f"Refusing {what} {text!r}: only letters, digits and '_' are loaded as identifiers")
    return text.lower()


def newest_report_id(events: Sequence[Any]) -> int:
    """The id of the newest report run among asset events (Canvas's ids only grow); 0 for none."""
    return max((int(e.extra.get("report_id") or 0) for e in events), default=0)


def newest_export(events: Sequence[Any]) -> list[dict[str, Any]]:
    """The objects of the newest report run among asset events, one per URI."""
    if not events:
        return []
    newest = newest_report_id(events)
    objects: dict[str, dict[str, Any]] = {}
    for event in events:
        if int(event.extra.get("report_id") or 0) == newest:
            # extra["uri"] is the object's own URI; the asset's escapes `%`, `?` and `#`.
            objects[event.asset.uri] = {**event.extra, "uri": event.extra.get("uri") or event.asset.uri}
    return sorted(objects.values(), key=lambda o: o["uri"])


def csv_rows(path: ObjectStoragePath, width: int, reader: Iterator[list[str]]) -> Iterator[tuple[str, ...]]:
    for number, row in enumerate(reader, start=2):
        if len(row) != width:
            raise ValueError(f"{path}: line {number} has {len(row)} fields, the header has {width}")
        yield tuple(row)


def load_csv(hook: DbApiHook, path: ObjectStoragePath, table: str) -> int:
    """Stream one CSV into ``table`` (replacing it); return the rows loaded."""
    staging = f"{table}__loading"
    with path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
        reader = csv.reader(text)
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path} is empty: no header row")
        columns = [identifier(name.strip(), "column") for name in header]
        hook.run(
            [
                f"DROP TABLE IF EXISTS {staging}",
                f"CREATE TABLE {staging} ({', '.join(f'{c} TEXT' for c in columns)})",
            ]
        )
        counted = 0

        def counting() -> Iterator[tuple[str, ...]]:
            nonlocal counted
            for row in csv_rows(path, len(columns), reader):
                counted += 1
                yield row

        hook.insert_rows(
            staging, counting(), target_fields=columns, commit_every=BATCH_ROWS, executemany=True
        )
    hook.run([f"DROP TABLE IF EXISTS {table}", f"ALTER TABLE {staging} RENAME TO {table}"])
    return counted


with DAG(
    dag_id="example_canvas_load_warehouse",
    description="Load the landed Canvas provisioning tables into the warehouse (asset-scheduled)",
    schedule=[ALIAS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["canvas", "example"],
) as dag:

    @task(inlets=[ALIAS])
    def load_tables(**context: Any) -> dict[str, int]:
        """Load every CSV of the export that triggered this run; return rows per table."""
        events = [e for batch in context["triggering_asset_events"].values() for e in batch]
        recent = context["inlet_events"][ALIAS]
        # Airflow 3.2+ can ask for the newest events only; 3.1 returns them all, as a list.
        if hasattr(recent, "ascending"):
            recent = recent.ascending(False).limit(1000)
        landed = list(recent)
        if not events:  # a manual run (or dag.test) has none: load the newest export instead
            events = landed
        # Canvas numbers the runs of every report type in one sequence: compare like with like.
        types = {e.extra.get("report") for e in events}
        landed = [e for e in landed if e.extra.get("report") in types]
        if newest_report_id(landed) > newest_report_id(events):
            raise AirflowSkipException(
                f"This run was triggered by export #{newest_report_id(events)}, older than export "
                f"#{newest_report_id(landed)}, which has landed since (an older night landed again): "
                "loading it would replace newer tables with older data. Nothing was loaded."
            )
        objects = [o for o in newest_export(events) if str(o.get("name", o["uri"])).endswith(".csv")]
        if not objects:
            raise ValueError(
                f"No landed CSV found through the asset alias {ALIAS.name!r}: run the export first"
            )
        lake_conn_id = Variable.get("canvas_lake_conn_id", default="") or None
        hook = warehouse_hook()
        loaded: dict[str, int] = {}
        for obj in objects:
            name = str(obj.get("name") or obj["uri"].rsplit("/", 1)[-1])
            table = identifier(TABLE_PREFIX + name.removesuffix(".csv"), "table")
            path = ObjectStoragePath(obj["uri"], conn_id=lake_conn_id)
            loaded[table] = load_csv(hook, path, table)
            print(f"Loaded {loaded[table]:,} rows into {table} from {obj['uri']}")
        return loaded

    load_tables()
