"""DownloadReportOperator into real S3 (moto's S3 server) through ObjectStoragePath + the Amazon provider."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_canvas_reports.simulator import Fault
from tests.e2e.test_download import download_dag, finished_report, generated_file
from tests.fixtures import s3 as s3_fixtures
from tests.fixtures.s3 import S3Server

# The session fixture, registered here under its own name (conftest.py is not ours to change).
s3_server = s3_fixtures.s3_server

RunDag = Callable[..., Any]
MiB = 1 << 20


def s3_sha256(server: S3Server, key: str) -> tuple[int, str]:
    body = server.client().get_object(Bucket=server.bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(MiB), b""):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def file_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_large_csv_streams_to_s3_as_a_multipart_upload(
    start_simulator: Any, run_dag: RunDag, s3_server: S3Server
) -> None:
    canvas = start_simulator(users=2000, pad_to_bytes=12 * MiB)
    report_id = finished_report(canvas, "provisioning_csv", {"users": True})
    source = generated_file(canvas, report_id)
    name = canvas.sim.reports[report_id].attachment.display_name
    assert name.endswith(".csv")
    assert source.stat().st_size > 10 * MiB

    result = run_dag(
        download_dag(
            "dl_s3_csv",
            report="provisioning_csv",
            report_id=report_id,
            destination=s3_server.url("csv/{{ ds }}/"),
            dest_conn_id=s3_server.conn_id,
        )
    )

    assert result["land"].state == "success"
    [landed] = result["land"].return_value
    key = landed["uri"].removeprefix(f"s3://{s3_server.bucket}/")
    assert key.startswith("csv/")
    assert key.endswith("/" + name)
    assert s3_server.keys(prefix="csv/") == [key]
    expected = hashlib.sha256(source.read_bytes()).hexdigest()
    assert s3_sha256(s3_server, key) == (source.stat().st_size, expected)
    assert landed["sha256"] == expected
    assert landed["size"] == source.stat().st_size
    # It went up in parts (an S3 multipart ETag ends in -<parts>), and none is left pending.
    etag = s3_server.client().head_object(Bucket=s3_server.bucket, Key=key)["ETag"].strip('"')
    assert etag.rsplit("-", 1)[-1].isdigit()
    assert int(etag.rsplit("-", 1)[-1]) >= 2
    assert s3_server.pending_uploads(prefix="csv/") == []


def test_zip_report_extracts_to_one_s3_object_per_member(
    start_simulator: Any, run_dag: RunDag, s3_server: S3Server
) -> None:
    canvas = start_simulator(users=3000)
    report_id = finished_report(
        canvas, "provisioning_csv", {"users": True, "courses": True, "enrollments": True}
    )
    with zipfile.ZipFile(generated_file(canvas, report_id)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}

    result = run_dag(
        download_dag(
            "dl_s3_zip",
            report="provisioning_csv",
            report_id=report_id,
            destination=s3_server.url("zip/"),
            dest_conn_id=s3_server.conn_id,
        )
    )

    assert result["land"].state == "success"
    assert sorted(s3_server.keys(prefix="zip/")) == sorted(f"zip/{n}" for n in members)
    for name, data in members.items():
        assert s3_sha256(s3_server, f"zip/{name}") == (len(data), file_sha256(data))
    assert [o["uri"] for o in result["land"].return_value] == [
        f"s3://{s3_server.bucket}/zip/{n}" for n in members
    ]


@pytest.mark.parametrize("kind", ["truncate", "wrong_length"])
def test_failed_download_leaves_s3_untouched(
    start_simulator: Any, run_dag: RunDag, s3_server: S3Server, kind: str
) -> None:
    canvas = start_simulator(users=2000, pad_to_bytes=9 * MiB)
    report_id = finished_report(canvas, "provisioning_csv", {"users": True})
    name = canvas.sim.reports[report_id].attachment.display_name
    prefix = f"fail-{kind}/"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=prefix + name, Body=b"the previous copy")
    canvas.sim.add_fault(Fault(endpoint="store", kind=kind, times=None, fraction=0.9))

    result = run_dag(
        download_dag(
            f"dl_s3_fail_{kind}",
            report="provisioning_csv",
            report_id=report_id,
            destination=s3_server.url(prefix),
            dest_conn_id=s3_server.conn_id,
            download_attempts=2,
        )
    )

    assert result["land"].state == "failed"
    assert s3_server.keys(prefix=prefix) == [prefix + name]
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=prefix + name)["Body"].read()
    assert body == b"the previous copy"
    assert s3_server.pending_uploads(prefix=prefix) == []  # aborted, not left to be billed
