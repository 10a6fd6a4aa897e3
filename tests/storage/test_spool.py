from __future__ import annotations

import io
import os

import pytest

from airflow_provider_canvas_reports.storage import StorageError, VerificationError, file_chunks, spool_stream

from .helpers import MiB, data_bytes, data_chunks, failing_after, sha256


def test_spooled_file_holds_the_stream_and_is_deleted_on_exit(tmp_path):
    with spool_stream(data_chunks(3 * MiB + 7), expected_size=3 * MiB + 7, dir=tmp_path) as spooled:
        assert spooled.path.parent == tmp_path
        assert spooled.path.read_bytes() == data_bytes(3 * MiB + 7)
        assert spooled.size == 3 * MiB + 7
        assert spooled.sha256 == sha256(data_bytes(3 * MiB + 7))
        assert b"".join(file_chunks(str(spooled.path))) == data_bytes(3 * MiB + 7)
    assert not spooled.path.exists()
    assert os.listdir(tmp_path) == []


def test_a_readable_is_spooled_exactly(tmp_path):
    total = 6 * MiB + 3
    with spool_stream(io.BytesIO(data_bytes(total)), expected_size=total, dir=tmp_path) as spooled:
        assert spooled.path.read_bytes() == data_bytes(total)
        assert (spooled.size, spooled.sha256) == (total, sha256(data_bytes(total)))
    assert os.listdir(tmp_path) == []


def test_spooled_file_is_deleted_when_the_body_fails(tmp_path):
    with pytest.raises(RuntimeError), spool_stream(iter([b"abc"]), expected_size=3, dir=tmp_path) as spooled:
        raise RuntimeError("extraction failed")
    assert not spooled.path.exists()


@pytest.mark.parametrize(
    ("chunks", "expected_size", "error"),
    [
        (lambda: failing_after(data_chunks(2 * MiB), MiB), None, ConnectionResetError),
        (lambda: iter([b"abc"]), 4, VerificationError),
        (lambda: iter([b"abcde"]), 4, VerificationError),
    ],
)
def test_failed_download_leaves_no_spool(tmp_path, chunks, expected_size, error):
    with pytest.raises(error), spool_stream(chunks(), expected_size=expected_size, dir=tmp_path):
        pytest.fail("must not be reached")
    assert os.listdir(tmp_path) == []


def test_verify_runs_before_the_spool_is_handed_out(tmp_path):
    def verify(size, digest):
        assert (size, digest) == (3, sha256(b"abc"))
        raise VerificationError("manifest mismatch")

    with (
        pytest.raises(VerificationError),
        spool_stream(iter([b"abc"]), expected_size=3, dir=tmp_path, verify=verify),
    ):
        pytest.fail("must not be reached")
    assert os.listdir(tmp_path) == []


def test_a_download_that_cannot_fit_is_refused_before_spooling(tmp_path):
    consumed = []

    def chunks():
        consumed.append(1)
        yield b"x"

    with (
        pytest.raises(StorageError, match="Not enough space"),
        spool_stream(chunks(), expected_size=1 << 60, dir=tmp_path),
    ):
        pytest.fail("must not be reached")
    assert consumed == []
    assert os.listdir(tmp_path) == []


def test_stale_spools_of_one_owner_are_removed_and_others_kept(tmp_path):
    from airflow_provider_canvas_reports.storage import clean_stale_spools

    # What kill -9 of an earlier try leaves: a spool named for its task instance.
    mine = tmp_path / "canvas-report-aaaa1111-x1y2.spool"
    mine.write_bytes(b"PK half a zip")
    theirs = tmp_path / "canvas-report-bbbb2222-z9.spool"
    theirs.write_bytes(b"another task's spool, maybe in use")
    unrelated = tmp_path / "canvas-report-aaaa1111-notes.txt"
    unrelated.write_bytes(b"not a spool")

    assert clean_stale_spools("aaaa1111", tmp_path) == [mine]
    assert not mine.exists()
    assert theirs.exists()
    assert unrelated.exists()


def test_spool_is_named_for_its_owner_and_still_deleted_on_exit(tmp_path):
    with spool_stream(data_chunks(1000), expected_size=1000, dir=tmp_path, owner="cafe0123") as spooled:
        assert spooled.path.name.startswith("canvas-report-cafe0123-")
    assert list(tmp_path.iterdir()) == []


def test_clean_stale_spools_needs_an_owner(tmp_path):
    from airflow_provider_canvas_reports.storage import clean_stale_spools

    with pytest.raises(ValueError, match="owner"):
        clean_stale_spools("", tmp_path)
