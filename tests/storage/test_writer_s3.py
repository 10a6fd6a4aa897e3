"""S3's own extras, against a real S3-protocol server (moto in a subprocess): a failed write
aborts its multipart upload, and clean_stale_partials removes what a killed one left. What every
object store promises is tested in test_writer_object_stores.py."""

from __future__ import annotations

import pytest

from airflow_provider_canvas_reports.storage import (
    clean_stale_partials,
    write_stream,
)

from .helpers import MiB, data_chunks, failing_after

BLOCK = 5 * MiB  # S3's minimum part size: 12 MiB -> a 3-part multipart upload


def key_of(path) -> str:
    return path.path.split("/", 1)[1]


def assert_nothing_left(s3_server, folder) -> None:
    prefix = key_of(folder)
    assert s3_server.keys(prefix=prefix) == []
    assert s3_server.pending_uploads(prefix=prefix) == []


def test_failure_mid_stream_aborts_the_multipart_upload(s3_server, s3_dir):
    prefix = key_of(s3_dir)
    pending_mid_stream = []

    def chunks():
        for sent, chunk in enumerate(failing_after(data_chunks(12 * MiB, chunk_size=MiB), 11 * MiB), 1):
            if sent == 11:  # two parts are uploaded by now
                pending_mid_stream.extend(s3_server.pending_uploads(prefix=prefix))
            yield chunk

    with pytest.raises(ConnectionResetError):
        write_stream(chunks(), s3_dir / "users.csv", expected_size=12 * MiB, block_size=BLOCK)
    assert len(pending_mid_stream) == 1  # the upload existed...
    assert_nothing_left(s3_server, s3_dir)  # ...and was aborted, not completed


def test_clean_stale_partials_aborts_leftover_uploads(s3_server, s3_dir):
    """What kill -9 leaves on S3: an unfinished multipart upload. Only this folder's, by name."""
    client, bucket = s3_server.client(), s3_server.bucket
    prefix = key_of(s3_dir)
    mine = client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/users.csv")["UploadId"]
    client.upload_part(Bucket=bucket, Key=f"{prefix}/users.csv", UploadId=mine, PartNumber=1, Body=b"x" * 100)
    other_name = client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/courses.csv")["UploadId"]
    deeper = client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}/sub/users.csv")["UploadId"]

    # (min_age is not tested here: moto reports every upload as initiated in 2010.)
    removed = clean_stale_partials(s3_dir, ["users.csv"])
    assert removed == [f"s3://{bucket}/{prefix}/users.csv#{mine}"]
    left = {u["UploadId"] for u in s3_server.pending_uploads(prefix=prefix)}
    assert left == {other_name, deeper}
    assert clean_stale_partials(s3_dir) == [f"s3://{bucket}/{prefix}/courses.csv#{other_name}"]
    client.abort_multipart_upload(Bucket=bucket, Key=f"{prefix}/sub/users.csv", UploadId=deeper)
