"""write_stream on a real local filesystem (and an fsspec filesystem without atomic rename)."""

from __future__ import annotations

import hashlib
import io
import os
import random
import signal
import time

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_canvas_reports.storage import (
    CHUNK_SIZE,
    DestinationExistsError,
    LandedObject,
    OverwritePolicy,
    StorageError,
    UnsafeNameError,
    VerificationError,
    clean_stale_partials,
    write_stream,
)
from airflow_provider_canvas_reports.storage.names import is_partial_name, new_partial_name
from airflow_provider_canvas_reports.storage.streaming import Meter, pump
from airflow_provider_canvas_reports.storage.writer import DEFAULT_UPLOAD_BLOCK_SIZE, upload_block_size

from .helpers import MiB, data_bytes, data_chunks, failing_after, sha256


def entries(folder: ObjectStoragePath) -> list[str]:
    return sorted(os.listdir(folder.path))


def partials(folder: ObjectStoragePath) -> list[str]:
    return [e for e in entries(folder) if is_partial_name(e)]


# -- happy path --------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 1000, 64 * 1024, 3 * MiB])
def test_bytes_land_exactly(local_dir, chunk_size):
    total = 2 * MiB + 12345 if chunk_size > 1 else 5000
    expected = data_bytes(total)
    landed = write_stream(
        data_chunks(total, chunk_size=chunk_size), local_dir / "users.csv", expected_size=total
    )
    path = local_dir.path + "/users.csv"
    with open(path, "rb") as f:
        assert f.read() == expected
    assert landed == LandedObject(
        uri=f"file://{path}", name="users.csv", size=total, sha256=hashlib.sha256(expected).hexdigest()
    )
    assert landed.as_dict() == {
        "uri": f"file://{path}",
        "name": "users.csv",
        "size": total,
        "sha256": landed.sha256,
    }
    assert entries(local_dir) == ["users.csv"]


def test_empty_stream_lands_an_empty_object(local_dir):
    landed = write_stream(iter([b"", b""]), local_dir / "empty.csv", expected_size=0)
    assert landed.size == 0
    assert landed.sha256 == sha256(b"")
    assert os.path.getsize(local_dir.path + "/empty.csv") == 0


def test_unknown_size_is_accepted(local_dir):
    landed = write_stream(iter([b"a,b\n", b"1,2\n"]), local_dir / "x.csv", expected_size=None)
    assert landed.size == 8


def test_missing_folders_are_created(tmp_path):
    folder = ObjectStoragePath(f"file://{tmp_path}/a/b/c/")
    write_stream(iter([b"x"]), folder / "x.csv", expected_size=1)
    assert (tmp_path / "a/b/c/x.csv").read_bytes() == b"x"


def test_final_name_appears_only_after_the_last_byte(local_dir):
    final = local_dir.path + "/users.csv"
    seen = []

    def chunks():
        yield b"a" * CHUNK_SIZE
        yield b"b" * CHUNK_SIZE
        seen.append((os.path.exists(final), partials(local_dir)))

    write_stream(chunks(), local_dir / "users.csv", expected_size=2 * CHUNK_SIZE)
    ((exists_mid_stream, partials_mid_stream),) = seen
    assert not exists_mid_stream
    assert len(partials_mid_stream) == 1
    assert is_partial_name(partials_mid_stream[0], "users.csv")
    assert entries(local_dir) == ["users.csv"]


def test_old_object_stays_readable_until_the_new_one_replaces_it(local_dir):
    final = local_dir.path + "/users.csv"
    write_stream(iter([b"old"]), local_dir / "users.csv", expected_size=3)
    seen = []

    def chunks():
        yield b"new" * 1000
        with open(final, "rb") as f:
            seen.append(f.read())

    write_stream(chunks(), local_dir / "users.csv", expected_size=3000)
    assert seen == [b"old"]
    with open(final, "rb") as f:
        assert f.read() == b"new" * 1000


def test_pump_coalesces_small_chunks_and_passes_big_ones_through():
    writes: list[int] = []
    meter = Meter(None, "test")
    small = [b"x" * 1000] * 3000  # ~2.9 MiB in 1 KB chunks
    big = [b"y" * (3 * CHUNK_SIZE)]
    pump(iter(small + big + small), lambda data: writes.append(len(data)), meter)
    assert sum(writes) == 6000 * 1000 + 3 * CHUNK_SIZE
    assert all(size >= CHUNK_SIZE for size in writes[:-1])
    assert max(writes) > 2 * CHUNK_SIZE  # the big chunk went through (minus what topped up the buffer)
    assert meter.size == sum(writes)


# -- a Readable source: read into a ring of reusable buffers -----------------------------------


@pytest.mark.parametrize("total", [100, CHUNK_SIZE, 21 * MiB + 12345])
def test_a_readable_lands_exactly(local_dir, total):
    """21 MiB go through the ring's buffers several times: a buffer refilled before its hash was
    done would change the SHA-256 (random bytes: any overwritten byte changes it)."""
    expected = random.Random(total).randbytes(total)
    landed = write_stream(io.BytesIO(expected), local_dir / "users.csv", expected_size=total)
    assert (landed.size, landed.sha256) == (total, sha256(expected))
    with open(local_dir.path + "/users.csv", "rb") as f:
        assert f.read() == expected
    assert partials(local_dir) == []


def test_an_empty_readable_lands_an_empty_object(local_dir):
    landed = write_stream(io.BytesIO(b""), local_dir / "users.csv", expected_size=0)
    assert (landed.size, landed.sha256) == (0, sha256(b""))


def test_a_readable_that_overflows_commits_nothing(local_dir):
    with pytest.raises(VerificationError, match="more than the expected"):
        write_stream(io.BytesIO(data_bytes(3 * MiB)), local_dir / "users.csv", expected_size=2 * MiB)
    assert entries(local_dir) == []


@pytest.mark.parametrize("readable", [True, False])
def test_progress_is_told_the_running_count(local_dir, readable):
    total = 21 * MiB + 5
    seen: list[int] = []
    source = io.BytesIO(data_bytes(total)) if readable else data_chunks(total, chunk_size=MiB)
    write_stream(source, local_dir / "users.csv", expected_size=total, progress=seen.append)
    assert len(seen) > 2
    assert seen == sorted(set(seen))
    assert seen[-1] == total


# -- failures leave nothing --------------------------------------------------------------------


def test_failure_mid_stream_leaves_nothing(local_dir):
    with pytest.raises(ConnectionResetError):
        write_stream(
            failing_after(data_chunks(5 * MiB), 3 * MiB), local_dir / "users.csv", expected_size=5 * MiB
        )
    assert entries(local_dir) == []


def test_failure_mid_stream_keeps_the_old_object(local_dir):
    write_stream(iter([b"old"]), local_dir / "users.csv", expected_size=3)
    with pytest.raises(ConnectionResetError):
        write_stream(failing_after(data_chunks(4 * MiB), MiB), local_dir / "users.csv", expected_size=None)
    assert entries(local_dir) == ["users.csv"]
    with open(local_dir.path + "/users.csv", "rb") as f:
        assert f.read() == b"old"


def test_failed_verification_commits_nothing_and_keeps_the_old_object(local_dir):
    write_stream(iter([b"old"]), local_dir / "users.csv", expected_size=3)
    calls = []

    def verify(size, digest):
        calls.append((size, digest))
        raise ValueError("checksum does not match the manifest")

    with pytest.raises(ValueError, match="manifest"):
        write_stream(iter([b"new content"]), local_dir / "users.csv", expected_size=11, verify=verify)
    assert calls == [(11, sha256(b"new content"))]
    assert entries(local_dir) == ["users.csv"]
    with open(local_dir.path + "/users.csv", "rb") as f:
        assert f.read() == b"old"


def test_short_stream_fails_verification(local_dir):
    with pytest.raises(VerificationError, match="received 3 bytes but expected 10"):
        write_stream(iter([b"abc"]), local_dir / "users.csv", expected_size=10)
    assert entries(local_dir) == []


def test_long_stream_is_cut_as_soon_as_it_overflows(local_dir):
    produced = []

    def endless():
        while True:
            produced.append(1)
            yield b"x" * 1000

    with pytest.raises(VerificationError, match="more than the expected 5000 bytes"):
        write_stream(endless(), local_dir / "users.csv", expected_size=5000)
    assert len(produced) == 6
    assert entries(local_dir) == []


def test_unsafe_target_names_are_refused(local_dir):
    with pytest.raises(UnsafeNameError):
        write_stream(iter([b"x"]), local_dir / ".hidden", expected_size=1)
    with pytest.raises(UnsafeNameError, match="not normalised"):
        write_stream(iter([b"x"]), local_dir / "e\u0301.csv", expected_size=1)
    assert entries(local_dir) == []


def test_a_folder_at_the_target_name_is_refused(local_dir):
    os.mkdir(local_dir.path + "/users.csv")
    with pytest.raises(StorageError, match="is a folder"):
        write_stream(iter([b"x"]), local_dir / "users.csv", expected_size=1)


def test_an_object_that_cannot_fit_is_refused_before_writing(local_dir):
    with pytest.raises(StorageError, match="Not enough space"):
        write_stream(iter([b"x"]), local_dir / "users.csv", expected_size=1 << 60)
    assert entries(local_dir) == []


def test_negative_expected_size_is_a_programming_error(local_dir):
    with pytest.raises(ValueError, match="expected_size"):
        write_stream(iter([b"x"]), local_dir / "users.csv", expected_size=-1)


# -- overwrite policies ------------------------------------------------------------------------


def test_replace_is_the_default(local_dir):
    write_stream(iter([b"one"]), local_dir / "users.csv", expected_size=3)
    landed = write_stream(iter([b"two!"]), local_dir / "users.csv", expected_size=4)
    assert landed.size == 4
    assert not landed.skipped
    with open(local_dir.path + "/users.csv", "rb") as f:
        assert f.read() == b"two!"


def test_fail_policy_refuses_before_reading_anything(local_dir):
    write_stream(iter([b"one"]), local_dir / "users.csv", expected_size=3)
    consumed = []

    def chunks():
        consumed.append(1)
        yield b"two"

    with pytest.raises(DestinationExistsError) as excinfo:
        write_stream(chunks(), local_dir / "users.csv", expected_size=3, overwrite="fail")
    message = str(excinfo.value)
    assert f"file://{local_dir.path}/users.csv exists and overwrite='fail'" in message
    assert "overwrite='replace'" in message
    assert consumed == []
    with open(local_dir.path + "/users.csv", "rb") as f:
        assert f.read() == b"one"


def test_fail_policy_catches_an_object_created_while_streaming(local_dir):
    final = local_dir.path + "/users.csv"

    def chunks():
        yield b"mine"
        with open(final, "wb") as f:
            f.write(b"theirs")

    with pytest.raises(DestinationExistsError):
        write_stream(chunks(), local_dir / "users.csv", expected_size=4, overwrite=OverwritePolicy.FAIL)
    assert entries(local_dir) == ["users.csv"]
    with open(final, "rb") as f:
        assert f.read() == b"theirs"


def test_fail_policy_writes_when_nothing_is_there(local_dir):
    landed = write_stream(iter([b"one"]), local_dir / "users.csv", expected_size=3, overwrite="fail")
    assert landed.size == 3


def test_skip_identical_keeps_the_existing_object(local_dir):
    first = write_stream(iter([b"same"]), local_dir / "users.csv", expected_size=4)
    before = os.stat(local_dir.path + "/users.csv")
    again = write_stream(
        iter([b"sa", b"me"]), local_dir / "users.csv", expected_size=4, overwrite="skip_identical"
    )
    after = os.stat(local_dir.path + "/users.csv")
    assert again.skipped
    assert again.as_dict() == first.as_dict()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    assert entries(local_dir) == ["users.csv"]


def test_skip_identical_replaces_different_content(local_dir):
    write_stream(iter([b"same"]), local_dir / "users.csv", expected_size=4)
    landed = write_stream(
        iter([b"diff"]), local_dir / "users.csv", expected_size=4, overwrite="skip_identical"
    )
    assert not landed.skipped
    with open(local_dir.path + "/users.csv", "rb") as f:
        assert f.read() == b"diff"


def test_unknown_policy_is_refused(local_dir):
    with pytest.raises(ValueError, match="'replace', 'fail', 'skip_identical'"):
        write_stream(iter([b"x"]), local_dir / "users.csv", expected_size=1, overwrite="clobber")


# -- stale partials ----------------------------------------------------------------------------


def test_clean_stale_partials_removes_only_our_leftovers(local_dir):
    folder = local_dir.path
    ours = new_partial_name("users.csv")
    other = new_partial_name("courses.csv")
    for name in (ours, other, "users.csv", ".hidden", ".users.csv.partial-notours"):
        with open(f"{folder}/{name}", "wb") as f:
            f.write(b"x")
    removed = clean_stale_partials(local_dir, ["users.csv"])
    assert removed == [f"file://{folder}/{ours}"]
    assert sorted(os.listdir(folder)) == sorted([other, "users.csv", ".hidden", ".users.csv.partial-notours"])
    assert clean_stale_partials(local_dir) == [f"file://{folder}/{other}"]
    assert sorted(os.listdir(folder)) == sorted(["users.csv", ".hidden", ".users.csv.partial-notours"])


def test_clean_stale_partials_spares_recent_ones(local_dir):
    folder = local_dir.path
    old, fresh = new_partial_name("a.csv"), new_partial_name("a.csv")
    for name in (old, fresh):
        with open(f"{folder}/{name}", "wb") as f:
            f.write(b"x")
    an_hour_ago = time.time() - 3600
    os.utime(f"{folder}/{old}", (an_hour_ago, an_hour_ago))
    assert clean_stale_partials(local_dir, ["a.csv"], min_age=300) == [f"file://{folder}/{old}"]
    assert os.listdir(folder) == [fresh]


def test_clean_stale_partials_of_a_missing_folder_is_a_no_op(tmp_path):
    assert clean_stale_partials(ObjectStoragePath(f"file://{tmp_path}/nothing")) == []


def test_a_killed_writer_leaves_only_a_partial_that_cleanup_removes(local_dir):
    """kill -9 mid-write (a real SIGKILL of a forked writer): never a final object."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: streams forever after telling the parent it has started
        try:
            os.close(read_fd)

            def chunks():
                yield b"x" * CHUNK_SIZE
                yield b"x" * CHUNK_SIZE  # the first write happens on the second chunk
                os.write(write_fd, b"started")
                while True:
                    time.sleep(0.01)
                    yield b"x" * 1024

            write_stream(chunks(), local_dir / "users.csv", expected_size=None)
        finally:
            os._exit(1)
    os.close(write_fd)
    try:
        assert os.read(read_fd, 7) == b"started"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read_fd)
    leftovers = entries(local_dir)
    assert "users.csv" not in leftovers
    assert len(leftovers) == 1
    assert is_partial_name(leftovers[0], "users.csv")
    assert clean_stale_partials(local_dir, ["users.csv"]) == [f"file://{local_dir.path}/{leftovers[0]}"]
    assert entries(local_dir) == []
    # ...and the retry lands the object normally.
    write_stream(iter([b"retry"]), local_dir / "users.csv", expected_size=5)
    assert entries(local_dir) == ["users.csv"]


# -- a filesystem without atomic rename (fsspec memory) ------------------------------------------


@pytest.fixture
def memory_dir():
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach(protocol="memory", fs=MemoryFileSystem())
    folder = ObjectStoragePath(f"memory://canvas-{time.monotonic_ns()}/reports/")
    yield folder
    folder.fs.rm(folder.path, recursive=True)


def test_generic_filesystem_lands_via_hidden_temp(memory_dir):
    landed = write_stream(data_chunks(3 * MiB), memory_dir / "users.csv", expected_size=3 * MiB)
    assert landed.uri.startswith("memory://")
    assert landed.uri.endswith("/reports/users.csv")
    assert (memory_dir / "users.csv").read_bytes() == data_bytes(3 * MiB)
    assert [p.name for p in memory_dir.iterdir()] == ["users.csv"]


def test_generic_filesystem_failure_leaves_nothing(memory_dir):
    write_stream(iter([b"old"]), memory_dir / "users.csv", expected_size=3)
    with pytest.raises(ConnectionResetError):
        write_stream(failing_after(data_chunks(3 * MiB), MiB), memory_dir / "users.csv", expected_size=None)
    with pytest.raises(VerificationError):
        write_stream(iter([b"abc"]), memory_dir / "users.csv", expected_size=4)
    assert [p.name for p in memory_dir.iterdir()] == ["users.csv"]
    assert (memory_dir / "users.csv").read_bytes() == b"old"


def test_generic_filesystem_stale_partials(memory_dir):
    (memory_dir / new_partial_name("users.csv")).write_bytes(b"x")
    (memory_dir / "users.csv").write_bytes(b"y")
    assert len(clean_stale_partials(memory_dir, ["users.csv"])) == 1
    assert [p.name for p in memory_dir.iterdir()] == ["users.csv"]


# -- sizing ------------------------------------------------------------------------------------


def test_upload_block_size_grows_only_for_huge_objects():
    assert upload_block_size(None) == DEFAULT_UPLOAD_BLOCK_SIZE
    assert upload_block_size(10 * MiB) == DEFAULT_UPLOAD_BLOCK_SIZE
    huge = 200 * 1024 * MiB  # 200 GiB
    size = upload_block_size(huge)
    assert size % MiB == 0
    assert huge / size <= 9_000
