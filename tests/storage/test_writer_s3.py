"""S3's own extras, against a real S3-protocol server (moto in a subprocess): a failed write
aborts its multipart upload, and clean_stale_partials removes what a killed one left. What every
object store promises is tested in test_writer_object_stores.py."""

from __future__ import annotations

import gc

import pytest

from airflow_provider_canvas_reports.storage import (
    DestinationError,
    clean_stale_partials,
    resolve_destination,
    write_stream,
)

from .helpers import MiB, data_chunks, failing_after

BLOCK = 5 * MiB  # S3's minimum part size: 12 MiB -> a 3-part multipart upload


def key_of(path) -> str:
    return path.path.split("/", 1)[1]


def write_breaking_mid_upload(target) -> None:
    """A 12 MiB multipart write whose source breaks after 11 MiB, once parts are uploaded."""
    with pytest.raises(ConnectionResetError):
        write_stream(
            failing_after(data_chunks(12 * MiB), 11 * MiB), target, expected_size=None, block_size=BLOCK
        )


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


# -- least privilege: credentials that may only write objects ------------------------------------


def test_write_only_credentials_land_objects_and_abort_failed_uploads(s3_write_only):
    """A loader that may only PutObject (and abort its uploads): nothing else is needed."""
    server = s3_write_only
    folder = resolve_destination(server.url("loads/"), server.conn_id)
    assert clean_stale_partials(folder, ["users.csv"]) == []  # cannot list: nothing removed, no error
    landed = write_stream(
        data_chunks(12 * MiB), folder / "users.csv", expected_size=12 * MiB, block_size=BLOCK
    )
    small = write_stream(iter([b"id\n1\n"]), folder / "small.csv", expected_size=5)
    write_breaking_mid_upload(folder / "failed.csv")
    assert sorted(server.keys(prefix="loads/")) == ["loads/small.csv", "loads/users.csv"]
    assert server.pending_uploads(prefix="loads/") == []  # the failed one was aborted
    assert (landed.size, small.size) == (12 * MiB, 5)


@pytest.mark.parametrize("policy", ["fail", "skip_identical"])
def test_write_only_credentials_refuse_a_policy_that_must_read(s3_write_only, policy):
    server = s3_write_only
    folder = resolve_destination(server.url(f"{policy}/"), server.conn_id)
    with pytest.raises(DestinationError) as excinfo:
        write_stream(
            data_chunks(6 * MiB),
            folder / "users.csv",
            expected_size=6 * MiB,
            overwrite=policy,
            block_size=BLOCK,
        )
    assert str(excinfo.value) == (
        f"s3://{server.bucket}/{policy}/users.csv (connection {server.conn_id!r}): overwrite={policy!r} must read "
        "the destination, and the connection may not (Forbidden). Nothing was written. Grant it read access "
        "(S3: s3:GetObject and s3:ListBucket) or use overwrite='replace'."
    )
    assert server.keys(prefix=f"{policy}/") == []
    assert server.pending_uploads(prefix=f"{policy}/") == []


def test_an_upload_that_cannot_be_aborted_is_still_never_completed(s3_put_only, caplog):
    """May not even abort (s3:PutObject only): the failed write warns, and nothing appears."""
    server = s3_put_only
    folder = resolve_destination(server.url("put-only/"), server.conn_id)
    write_breaking_mid_upload(folder / "users.csv")
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    # The captured record holds the abort's exception, and through it the unfinished upload:
    # let go of both, so that a finaliser that would complete the upload gets its chance.
    caplog.clear()
    gc.collect()
    assert server.keys(prefix="put-only/") == []
    [pending] = server.pending_uploads(prefix="put-only/")  # left for the lifecycle rule
    assert pending["Key"] == "put-only/users.csv"
    assert warning.startswith(
        f"Could not abort the unfinished upload to s3://{server.bucket}/put-only/users.csv ("
    )
    assert "AbortIncompleteMultipartUpload" in warning
    server.client().abort_multipart_upload(
        Bucket=server.bucket, Key=pending["Key"], UploadId=pending["UploadId"]
    )
