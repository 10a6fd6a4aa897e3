"""write_stream against a real S3-protocol server (moto in a subprocess), through an Airflow connection."""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from airflow_provider_canvas_reports.storage import (
    DestinationExistsError,
    VerificationError,
    clean_stale_partials,
    resolve_destination,
    write_stream,
)

from .helpers import MiB, data_chunks, failing_after, sha256, sha256_of_chunks

BLOCK = 5 * MiB  # S3's minimum part size: 12 MiB -> a 3-part multipart upload


def key_of(path) -> str:
    return path.path.split("/", 1)[1]


def read_back(s3_server, key: str) -> tuple[int, str]:
    """Size and SHA-256 of an object, read back in chunks (never whole in memory)."""
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for chunk in body.iter_chunks(MiB):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def assert_nothing_left(s3_server, folder) -> None:
    prefix = key_of(folder)
    assert s3_server.keys(prefix=prefix) == []
    assert s3_server.pending_uploads(prefix=prefix) == []


def test_multipart_upload_lands_byte_for_byte(s3_server, s3_dir):
    total = 12 * MiB + 4321
    landed = write_stream(data_chunks(total), s3_dir / "users.csv", expected_size=total, block_size=BLOCK)
    key = key_of(s3_dir / "users.csv")
    assert landed.uri == f"s3://{s3_server.bucket}/{key}"
    assert (landed.size, landed.sha256) == (total, sha256_of_chunks(total))
    assert read_back(s3_server, key) == (total, landed.sha256)
    etag = s3_server.client().head_object(Bucket=s3_server.bucket, Key=key)["ETag"]
    assert etag.strip('"').endswith("-3")  # it really was a 3-part multipart upload
    assert s3_server.keys(prefix=key_of(s3_dir)) == [key]
    assert_nothing_pending = s3_server.pending_uploads(prefix=key_of(s3_dir))
    assert assert_nothing_pending == []


def test_a_readable_uploads_byte_for_byte(s3_server, s3_dir):
    """The ring's buffers are reused: the upload must have copied each before it was refilled."""
    total = 12 * MiB + 4321
    data = random.Random(total).randbytes(total)
    landed = write_stream(io.BytesIO(data), s3_dir / "users.csv", expected_size=total, block_size=BLOCK)
    assert (landed.size, landed.sha256) == (total, sha256(data))
    assert read_back(s3_server, key_of(s3_dir / "users.csv")) == (total, landed.sha256)
    assert s3_server.pending_uploads(prefix=key_of(s3_dir)) == []


def test_destination_url_to_landed_object(s3_server):
    """The operator's path: a URL string and a connection id in, an XCom-ready dict out."""
    folder = resolve_destination(f"s3://{s3_server.bucket}/e2e/2025-11-26/", s3_server.conn_id)
    assert clean_stale_partials(folder, ["users.csv"]) == []
    landed = write_stream(iter([b"id\n", b"1\n"]), folder / "users.csv", expected_size=5)
    assert landed.as_dict() == {
        "uri": f"s3://{s3_server.bucket}/e2e/2025-11-26/users.csv",
        "name": "users.csv",
        "size": 5,
        "sha256": hashlib.sha256(b"id\n1\n").hexdigest(),
    }


def test_small_object_and_empty_object(s3_server, s3_dir):
    small = write_stream(iter([b"id,name\n", b"1,Ada\n"]), s3_dir / "small.csv", expected_size=14)
    empty = write_stream(iter([]), s3_dir / "empty.csv", expected_size=0)
    assert read_back(s3_server, key_of(s3_dir / "small.csv")) == (14, small.sha256)
    assert read_back(s3_server, key_of(s3_dir / "empty.csv")) == (0, empty.sha256)


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


def test_failed_verification_aborts_the_upload(s3_server, s3_dir):
    def verify(size, digest):
        raise VerificationError("sha256 differs from the manifest")

    with pytest.raises(VerificationError, match="manifest"):
        write_stream(
            data_chunks(12 * MiB),
            s3_dir / "users.csv",
            expected_size=12 * MiB,
            verify=verify,
            block_size=BLOCK,
        )
    assert_nothing_left(s3_server, s3_dir)


def test_size_mismatch_aborts_the_upload(s3_server, s3_dir):
    with pytest.raises(VerificationError, match="expected"):
        write_stream(data_chunks(11 * MiB), s3_dir / "users.csv", expected_size=12 * MiB, block_size=BLOCK)
    with pytest.raises(VerificationError, match="expected"):
        write_stream(iter([b"abc"]), s3_dir / "small.csv", expected_size=4)
    assert_nothing_left(s3_server, s3_dir)


def test_failed_replacement_keeps_the_old_object(s3_server, s3_dir):
    old = write_stream(iter([b"old"]), s3_dir / "users.csv", expected_size=3)
    with pytest.raises(ConnectionResetError):
        write_stream(
            failing_after(data_chunks(12 * MiB), 11 * MiB),
            s3_dir / "users.csv",
            expected_size=None,
            block_size=BLOCK,
        )
    assert read_back(s3_server, key_of(s3_dir / "users.csv")) == (3, old.sha256)
    assert s3_server.pending_uploads(prefix=key_of(s3_dir)) == []
    new = write_stream(data_chunks(6 * MiB), s3_dir / "users.csv", expected_size=6 * MiB, block_size=BLOCK)
    assert read_back(s3_server, key_of(s3_dir / "users.csv")) == (6 * MiB, new.sha256)


def test_fail_policy_uploads_nothing(s3_server, s3_dir):
    write_stream(iter([b"old"]), s3_dir / "users.csv", expected_size=3)
    with pytest.raises(DestinationExistsError, match=r"s3://.*/users\.csv exists and overwrite='fail'"):
        write_stream(data_chunks(6 * MiB), s3_dir / "users.csv", expected_size=6 * MiB, overwrite="fail")
    assert read_back(s3_server, key_of(s3_dir / "users.csv"))[0] == 3
    assert s3_server.pending_uploads(prefix=key_of(s3_dir)) == []


def test_fail_policy_catches_an_object_created_while_streaming(s3_server, s3_dir):
    key = key_of(s3_dir / "users.csv")

    def chunks():
        yield from data_chunks(6 * MiB)
        s3_server.client().put_object(Bucket=s3_server.bucket, Key=key, Body=b"theirs")

    with pytest.raises(DestinationExistsError):
        write_stream(
            chunks(), s3_dir / "users.csv", expected_size=6 * MiB, overwrite="fail", block_size=BLOCK
        )
    assert read_back(s3_server, key)[0] == 6  # theirs, untouched
    assert s3_server.pending_uploads(prefix=key_of(s3_dir)) == []


def test_skip_identical_keeps_the_object_and_aborts_the_upload(s3_server, s3_dir):
    first = write_stream(data_chunks(6 * MiB), s3_dir / "users.csv", expected_size=6 * MiB, block_size=BLOCK)
    key = key_of(s3_dir / "users.csv")
    modified = s3_server.client().head_object(Bucket=s3_server.bucket, Key=key)["LastModified"]
    again = write_stream(
        data_chunks(6 * MiB),
        s3_dir / "users.csv",
        expected_size=6 * MiB,
        overwrite="skip_identical",
        block_size=BLOCK,
    )
    assert again.skipped
    assert again.as_dict() == first.as_dict()
    assert s3_server.client().head_object(Bucket=s3_server.bucket, Key=key)["LastModified"] == modified
    assert s3_server.pending_uploads(prefix=key_of(s3_dir)) == []
    changed = write_stream(
        data_chunks(6 * MiB, seed=2), s3_dir / "users.csv", expected_size=6 * MiB, overwrite="skip_identical"
    )
    assert not changed.skipped
    assert read_back(s3_server, key) == (6 * MiB, changed.sha256)


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
