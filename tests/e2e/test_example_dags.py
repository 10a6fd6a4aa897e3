"""The example DAGs parse, and run green with dag.test() against the simulator, as users copy them."""

from __future__ import annotations

import csv
import json
import sqlite3
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.dag_runs import dagbag
from tests.fixtures.turns import turns

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_dags"
EXPORT = "example_canvas_nightly_provisioning"
MAPPED = "example_canvas_mapped_reports"
LOAD = "example_canvas_load_warehouse"
TABLES = ("users", "accounts", "terms", "courses", "sections", "enrollments")

RunDag = Callable[..., Any]


def example_bag() -> Any:
    bag_class, _ = dagbag()
    return bag_class(dag_folder=str(EXAMPLES))


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Path]:
    """Lake (through the Airflow Variable), warehouse connection, fast polling."""
    paths = {"lake": tmp_path / "lake", "warehouse": tmp_path / "warehouse.db"}
    monkeypatch.setenv(
        "AIRFLOW_VAR_CANVAS_LAKE_URL", paths["lake"].as_uri()
    )  # no trailing "/": lake() adds it
    monkeypatch.setenv(
        "AIRFLOW_CONN_CANVAS_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(paths["warehouse"])})
    )
    monkeypatch.setenv("CANVAS_POLL_INTERVAL", "0.5")  # read when the DAG files are parsed
    return paths


def csv_rows(data: bytes) -> int:
    return sum(1 for _ in csv.reader(data.decode("utf-8").splitlines())) - 1


def test_every_example_dag_parses_without_import_errors(airflow_db: Path) -> None:
    bag = example_bag()
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted([EXPORT, MAPPED, LOAD])
    for dag_id in bag.dag_ids:
        dag = bag.get_dag(dag_id)
        assert dag is not None
        assert "canvas" in dag.tags
        dag.validate()


def test_nightly_export_lands_tables_and_queues_the_warehouse_load(
    canvas_simulator: Any, run_dag: RunDag, settings: dict[str, Path]
) -> None:
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.models.asset import AssetDagRunQueue
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import select, update

    _, sync_bag_to_db = dagbag()
    bag = example_bag()
    # Both DAGs known to the metadata DB, as the dag processor would make them: the export's asset
    # events must then queue a run of the alias-scheduled load DAG.
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    with create_session() as session:  # new DAGs start paused; a paused DAG is never queued
        session.execute(update(DagModel).where(DagModel.dag_id == LOAD).values(is_paused=False))

    export = run_dag(bag.get_dag(EXPORT))

    assert export.states() == {
        "start_export": "success",
        "wait_for_export": "success",
        "land_tables": "success",
    }
    report = export["start_export"].return_value
    assert report["parameters"]["skip_message"] in (True, "true")
    landed = export["land_tables"].return_value
    [partition] = list((settings["lake"] / "canvas" / "provisioning").iterdir())
    with zipfile.ZipFile(canvas_simulator.sim.reports[report["id"]].attachment.file.path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    assert sorted(members) == sorted(f"{t}.csv" for t in TABLES)
    assert {p.name: p.read_bytes() for p in partition.iterdir()} == members
    assert [o["uri"] for o in landed] == [(partition / name).as_uri() for name in members]
    with create_session() as session:
        queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.target_dag_id == LOAD)).all()
        assert len(queued) == len(TABLES)

    load = run_dag(bag.get_dag(LOAD))

    assert load.states() == {"load_tables": "success"}
    loaded = load["load_tables"].return_value
    expected = {f"canvas_{name.removesuffix('.csv')}": csv_rows(data) for name, data in members.items()}
    assert loaded == expected
    assert expected["canvas_enrollments"] > expected["canvas_users"] > 0
    with sqlite3.connect(settings["warehouse"]) as db:
        for table, rows in expected.items():
            assert db.execute(f"SELECT COUNT(*) FROM {table}").fetchone() == (rows,)  # noqa: S608
        # Every column, every value, in order: the first user row is the CSV's first data row.
        header, first = list(csv.reader(members["users.csv"].decode().splitlines()))[:2]
        cursor = db.execute(f"SELECT {', '.join(header)} FROM canvas_users LIMIT 1")  # noqa: S608
        assert list(cursor.fetchone()) == first
        assert not db.execute("SELECT name FROM sqlite_master WHERE name LIKE '%__loading'").fetchall()

    # A second load (e.g. a manual re-run) replaces the tables instead of appending to them.
    again = run_dag(bag.get_dag(LOAD))
    assert again["load_tables"].return_value == expected
    with sqlite3.connect(settings["warehouse"]) as db:
        assert db.execute("SELECT COUNT(*) FROM canvas_users").fetchone() == (expected["canvas_users"],)


def test_mapped_reports_run_one_report_per_sub_account(
    canvas_simulator: Any,
    run_dag: RunDag,
    settings: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_CANVAS_SUB_ACCOUNTS", "[2, 3, 4]")
    bag = example_bag()

    result = run_dag(bag.get_dag(MAPPED))

    assert result.state == "success"
    assert canvas_simulator.starts["last_user_access_csv"] == 3
    # The instances of each mapped task are released together and take turns (map index 0 goes first).
    assert sorted((t.place, t.kind) for t in turns(capsys.readouterr().out)) == [
        (1, "DownloadReportOperator"),
        (1, "StartAccountReportOperator"),
        (2, "DownloadReportOperator"),
        (2, "StartAccountReportOperator"),
    ]
    folders = sorted((settings["lake"] / "canvas" / "last_user_access").glob("*/account=*"))
    assert [f.name for f in folders] == ["account=2", "account=3", "account=4"]
    sim_reports = {
        state.account_id: state
        for state in canvas_simulator.sim.reports.values()
        if state.attachment is not None
    }
    for folder in folders:
        account = int(folder.name.split("=")[1])
        [landed] = list(folder.iterdir())
        attachment = sim_reports[account].attachment
        assert landed.name == attachment.display_name
        assert landed.read_bytes() == Path(attachment.file.path).read_bytes()


def test_load_dag_without_any_export_fails_clearly(run_dag: RunDag, settings: dict[str, Path]) -> None:
    bag = example_bag()
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import delete

    with create_session() as session:  # other tests of this session may have exported already
        session.execute(delete(AssetEvent))

    result = run_dag(bag.get_dag(LOAD))

    assert result["load_tables"].state == "failed"
    assert (
        not settings["warehouse"].exists()
        or not sqlite3.connect(settings["warehouse"]).execute("SELECT name FROM sqlite_master").fetchall()
    )


def test_load_dag_skips_an_export_older_than_one_already_landed(
    airflow_db: Path, settings: dict[str, Path]
) -> None:
    # An old night cleared and landed again triggers the load with its (older) report: loading it
    # would replace the newer tables. The task skips, and nothing reaches the warehouse.
    import importlib.util
    from types import SimpleNamespace

    from airflow.providers.common.compat.sdk import AirflowSkipException

    spec = importlib.util.spec_from_file_location("load_example", EXAMPLES / f"{LOAD}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def event(report_id: int) -> Any:
        uri = f"file:///lake/{report_id}/users.csv"
        return SimpleNamespace(
            asset=SimpleNamespace(uri=uri),
            extra={"report": "provisioning_csv", "report_id": report_id, "name": "users.csv"},
        )

    class Landed:  # context["inlet_events"]: an AssetAlias is not hashable on every Airflow
        def __getitem__(self, alias: Any) -> list[Any]:
            assert alias.name == module.ALIAS.name
            return [event(125)]

    context = {"triggering_asset_events": {"alias": [event(101)]}, "inlet_events": Landed()}
    with pytest.raises(AirflowSkipException, match="export #101, older than export #125"):
        module.load_tables.function(**context)


def test_load_dag_reads_objects_whose_names_the_asset_uri_escapes(tmp_path: Path) -> None:
    # mgp_grade_export_csv names members after terms ("Term #2", "100% Online"): the asset's URI
    # escapes `#`, `?` and `%`, so the loader reads each object by the URI the event's extra
    # carries, as the download emits it.
    import importlib.util
    from types import SimpleNamespace

    from airflow.sdk import Asset, ObjectStoragePath

    from airflow_provider_canvas_reports.operators.download import asset_uri

    spec = importlib.util.spec_from_file_location("load_example", EXAMPLES / f"{LOAD}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    events = []
    for name in ("Term #2.csv", "100% Online.csv", "a?b.csv"):
        (tmp_path / name).write_text("id\n1\n")
        uri = f"file://{tmp_path / name}"  # as the download names it (object_uri): not %-encoded
        events.append(
            SimpleNamespace(
                asset=Asset(asset_uri(uri)),
                extra={"report": "mgp_grade_export_csv", "report_id": 7, "uri": uri, "name": name},
            )
        )
    found = module.newest_export(events)
    assert sorted(o["name"] for o in found) == ["100% Online.csv", "Term #2.csv", "a?b.csv"]
    for obj in found:
        assert ObjectStoragePath(obj["uri"]).read_text() == "id\n1\n"
