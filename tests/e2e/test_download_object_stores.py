"""DownloadReportOperator into each real object store, through ObjectStoragePath and a connection.

S3 on moto (with the Amazon provider's filesystem) and Azure Blob Storage on Azurite (adlfs, the
filesystem of the Microsoft Azure provider): see tests/fixtures/stores.py.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_canvas_reports.simulator import Fault
from tests.e2e.test_download import download_dag, finished_report, generated_file
from tests.fixtures import stores
from tests.fixtures.stores import S3Store, Store

# The fixtures, registered here under their own names (conftest.py is not ours to change).
s3_server, s3_iam_users, s3_write_only, azure_server, azure_attached = (
    stores.s3_server,
    stores.s3_iam_users,
    stores.s3_write_only,
    stores.azure_server,
    stores.azure_attached,
)
store, write_only_store = stores.store, stores.write_only_store

RunDag = Callable[..., Any]
MiB = 1 << 20


def land(run_dag: RunDag, store: Store, name: str, report_id: int, folder: str, **kwargs: Any) -> Any:
    """Run a DAG whose one task downloads provisioning report ``report_id`` into ``folder``."""
    dag = download_dag(
        f"dl_{store.folder.protocol}_{name}",
        report="provisioning_csv",
        report_id=report_id,
        destination=store.url(folder),
        dest_conn_id=store.conn_id,
        **kwargs,
    )
    return run_dag(dag)["land"]


def test_large_csv_streams_to_the_store_in_blocks(
    start_simulator: Any, run_dag: RunDag, store: Store
) -> None:
    canvas = start_simulator(users=2000, pad_to_bytes=12 * MiB)
    report_id = finished_report(canvas, "provisioning_csv", {"users": True})
    source = generated_file(canvas, report_id)
    name = canvas.sim.reports[report_id].attachment.display_name
    assert name.endswith(".csv")
    assert source.stat().st_size > 10 * MiB

    task = land(run_dag, store, "csv", report_id, "csv/{{ ds }}/")

    assert task.state == "success"
    [landed] = task.return_value
    [stored] = store.names()
    assert stored.startswith("csv/")
    assert stored.endswith("/" + name)
    assert landed["uri"] == store.url(stored)
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert store.read_back(stored) == (source.stat().st_size, expected)
    assert (landed["size"], landed["sha256"]) == (source.stat().st_size, expected)
    assert store.parts(stored) >= 2  # it went up in blocks, committed once
    if isinstance(store, S3Store):
        assert store.unfinished_uploads() == []


def test_zip_report_extracts_to_one_object_per_member(
    start_simulator: Any, run_dag: RunDag, store: Store
) -> None:
    canvas = start_simulator(users=3000)
    report_id = finished_report(
        canvas, "provisioning_csv", {"users": True, "courses": True, "enrollments": True}
    )
    with zipfile.ZipFile(generated_file(canvas, report_id)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}

    task = land(run_dag, store, "zip", report_id, "zip/")

    assert task.state == "success"
    assert store.names() == sorted(f"zip/{n}" for n in members)
    for name, data in members.items():
        assert store.read_back(f"zip/{name}") == (len(data), hashlib.sha256(data).hexdigest())
    assert [o["uri"] for o in task.return_value] == [store.url(f"zip/{n}") for n in members]


@pytest.mark.parametrize("kind", ["truncate", "wrong_length"])
def test_failed_download_leaves_the_store_untouched(
    start_simulator: Any, run_dag: RunDag, store: Store, kind: str
) -> None:
    canvas = start_simulator(users=2000, pad_to_bytes=9 * MiB)
    report_id = finished_report(canvas, "provisioning_csv", {"users": True})
    name = canvas.sim.reports[report_id].attachment.display_name
    store.put(name, b"the previous copy")
    canvas.sim.add_fault(Fault(endpoint="store", kind=kind, times=None, fraction=0.9))

    task = land(run_dag, store, f"fail_{kind}", report_id, "", download_attempts=2)

    assert task.state == "failed"
    assert store.names() == [name]
    assert store.read_back(name) == (17, hashlib.sha256(b"the previous copy").hexdigest())
    if isinstance(store, S3Store):
        assert store.unfinished_uploads() == []  # aborted, not left to be billed


@pytest.mark.parametrize(
    ("parameters", "pad_to_bytes"),
    [({"users": True}, 12 * MiB), ({"users": True, "courses": True}, None)],
    ids=["csv-multipart", "zip"],
)
def test_write_only_credentials_are_enough(
    start_simulator: Any,
    run_dag: RunDag,
    write_only_store: S3Store,
    parameters: dict,
    pad_to_bytes: int | None,
) -> None:
    """A loader that may only write objects (s3:PutObject, s3:AbortMultipartUpload) lands reports."""
    store = write_only_store
    canvas = start_simulator(users=2000, pad_to_bytes=pad_to_bytes)
    report_id = finished_report(canvas, "provisioning_csv", parameters)
    source = generated_file(canvas, report_id)

    task = land(run_dag, store, f"write_only_{len(parameters)}", report_id, "")

    assert task.state == "success"
    assert store.names() == sorted(o["name"] for o in task.return_value)
    if pad_to_bytes:
        [obj] = task.return_value
        expected = (source.stat().st_size, hashlib.sha256(source.read_bytes()).hexdigest())
        assert (obj["size"], obj["sha256"]) == expected
        assert store.read_back(obj["name"]) == expected
        assert store.parts(obj["name"]) >= 2
    else:
        with zipfile.ZipFile(source) as zf:
            assert store.names() == sorted(zf.namelist())
    assert store.unfinished_uploads() == []
