"""write_stream against each real object store (S3 on moto, Azure Blob Storage on Azurite).

The same promises on every store: a complete, verified object at the final name, or nothing new
there at all. S3's own extras (aborting multipart uploads, cleaning leftovers) are in
test_writer_s3.py.
"""

from __future__ import annotations

import gc
import hashlib
import io
import random

import pytest

from airflow_provider_canvas_reports.storage import (
    DestinationExistsError,
    VerificationError,
    resolve_destination,
    write_stream,
)
from tests.fixtures.stores import S3Store, Store

from .helpers import MiB, TaskKilled, data_chunks, failing_after, sha256, sha256_of_chunks


def assert_nothing_left(store: Store) -> None:
    # An unfinished upload object still referenced (by a traceback, say) would complete the
    # upload when finalised: collect them first, so that this sees what happens after.
    gc.collect()
    assert store.names() == []
    if isinstance(store, S3Store):
        assert store.unfinished_uploads() == []


def test_block_upload_lands_byte_for_byte(store: Store):
    total = 2 * store.block_size + 4321
    landed = write_stream(
        data_chunks(total), store.folder / "users.csv", expected_size=total, block_size=store.block_size
    )
    assert landed.uri == store.url("users.csv")
    assert (landed.size, landed.sha256) == (total, sha256_of_chunks(total))
    assert store.read_back("users.csv") == (total, landed.sha256)
    assert store.parts("users.csv") == 3  # it really went up in blocks, and was committed once
    assert store.names() == ["users.csv"]


def test_a_readable_uploads_byte_for_byte(store: Store):
    """The ring's buffers are reused: the upload must have copied each before it was refilled."""
    total = 2 * store.block_size + 4321
    data = random.Random(total).randbytes(total)
    landed = write_stream(
        io.BytesIO(data), store.folder / "users.csv", expected_size=total, block_size=store.block_size
    )
    assert (landed.size, landed.sha256) == (total, sha256(data))
    assert store.read_back("users.csv") == (total, landed.sha256)


def test_destination_url_to_landed_object(store: Store):
    """The operator's path: a URL string and a connection id in, an XCom-ready dict out."""
    folder = resolve_destination(store.url(), store.conn_id)
    landed = write_stream(iter([b"id\n", b"1\n"]), folder / "users.csv", expected_size=5)
    assert landed.as_dict() == {
        "uri": store.url("users.csv"),
        "name": "users.csv",
        "size": 5,
        "sha256": hashlib.sha256(b"id\n1\n").hexdigest(),
    }
    assert store.read_back("users.csv") == (5, landed.sha256)


def test_small_object_and_empty_object(store: Store):
    small = write_stream(iter([b"id,name\n", b"1,Ada\n"]), store.folder / "small.csv", expected_size=14)
    empty = write_stream(iter([]), store.folder / "empty.csv", expected_size=0)
    assert store.read_back("small.csv") == (14, small.sha256)
    assert store.read_back("empty.csv") == (0, empty.sha256)


def test_failure_mid_stream_leaves_nothing(store: Store):
    total = 3 * store.block_size
    with pytest.raises(ConnectionResetError):
        write_stream(
            failing_after(data_chunks(total), total - MiB),  # two blocks are staged by then
            store.folder / "users.csv",
            expected_size=total,
            block_size=store.block_size,
        )
    assert_nothing_left(store)


def test_a_task_killed_mid_upload_leaves_nothing(store: Store):
    # Airflow's timeout and SIGTERM arrive as BaseExceptions inside whatever the task is doing.
    total = 3 * store.block_size
    with pytest.raises(TaskKilled):
        write_stream(
            failing_after(data_chunks(total), total - MiB, TaskKilled()),
            store.folder / "users.csv",
            expected_size=total,
            block_size=store.block_size,
        )
    assert_nothing_left(store)


def test_failed_verification_leaves_nothing(store: Store):
    def verify(size, digest):
        raise VerificationError("sha256 differs from the manifest")

    with pytest.raises(VerificationError, match="manifest"):
        write_stream(
            data_chunks(3 * store.block_size),
            store.folder / "users.csv",
            expected_size=3 * store.block_size,
            verify=verify,
            block_size=store.block_size,
        )
    assert_nothing_left(store)


def test_size_mismatch_leaves_nothing(store: Store):
    with pytest.raises(VerificationError, match="expected"):
        write_stream(
            data_chunks(3 * store.block_size - MiB),
            store.folder / "users.csv",
            expected_size=3 * store.block_size,
            block_size=store.block_size,
        )
    with pytest.raises(VerificationError, match="expected"):
        write_stream(iter([b"abc"]), store.folder / "small.csv", expected_size=4)
    assert_nothing_left(store)


def test_failed_replacement_keeps_the_old_object(store: Store):
    old = write_stream(iter([b"old"]), store.folder / "users.csv", expected_size=3)
    with pytest.raises(ConnectionResetError):
        write_stream(
            failing_after(data_chunks(3 * store.block_size), 3 * store.block_size - MiB),
            store.folder / "users.csv",
            expected_size=None,
            block_size=store.block_size,
        )
    assert store.read_back("users.csv") == (3, old.sha256)
    new = write_stream(
        data_chunks(6 * MiB), store.folder / "users.csv", expected_size=6 * MiB, block_size=store.block_size
    )
    assert store.read_back("users.csv") == (6 * MiB, new.sha256)
    if isinstance(store, S3Store):
        assert store.unfinished_uploads() == []


def test_fail_policy_uploads_nothing(store: Store):
    write_stream(iter([b"old"]), store.folder / "users.csv", expected_size=3)
    with pytest.raises(
        DestinationExistsError, match=rf"{store.folder.protocol}://.*/users\.csv exists and overwrite='fail'"
    ):
        write_stream(
            data_chunks(6 * MiB), store.folder / "users.csv", expected_size=6 * MiB, overwrite="fail"
        )
    assert store.read_back("users.csv")[0] == 3


def test_fail_policy_catches_an_object_created_while_streaming(store: Store):
    def chunks():
        yield from data_chunks(6 * MiB)
        store.put("users.csv", b"theirs")

    with pytest.raises(DestinationExistsError):
        write_stream(
            chunks(),
            store.folder / "users.csv",
            expected_size=6 * MiB,
            overwrite="fail",
            block_size=store.block_size,
        )
    assert store.read_back("users.csv") == (6, sha256(b"theirs"))  # theirs, untouched


def test_skip_identical_keeps_the_object(store: Store):
    first = write_stream(
        data_chunks(6 * MiB), store.folder / "users.csv", expected_size=6 * MiB, block_size=store.block_size
    )
    version = store.version("users.csv")
    again = write_stream(
        data_chunks(6 * MiB),
        store.folder / "users.csv",
        expected_size=6 * MiB,
        overwrite="skip_identical",
        block_size=store.block_size,
    )
    assert again.skipped
    assert again.as_dict() == first.as_dict()
    assert store.version("users.csv") == version
    changed = write_stream(
        data_chunks(6 * MiB, seed=2),
        store.folder / "users.csv",
        expected_size=6 * MiB,
        overwrite="skip_identical",
    )
    assert not changed.skipped
    assert store.read_back("users.csv") == (6 * MiB, changed.sha256)
    if isinstance(store, S3Store):
        assert store.unfinished_uploads() == []
