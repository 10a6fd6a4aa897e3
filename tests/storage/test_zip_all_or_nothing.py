"""extract_zip is all-or-nothing across nights: a failed extraction never costs an earlier object.

Night 1 lands users.csv, courses.csv and enrollments.csv in a folder; night 2 extracts a newer
ZIP of the same names into it and fails part-way. Every member is staged and verified before
the first is committed, so night 1's objects must come through whole, and nothing of night 2's
may be visible under a final name before every member is verified. Each store is the real one:
a local folder, S3 (moto), Azure Blob Storage (Azurite).
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_canvas_reports.storage import (
    DestinationExistsError,
    InvalidZipError,
    StorageError,
    extract_zip,
)
from airflow_provider_canvas_reports.storage.names import is_partial_name
from tests.fixtures.stores import Store

from .helpers import TaskKilled, build_zip, corrupt_member_data

NAMES = ["users.csv", "courses.csv", "enrollments.csv"]


def night(number: int) -> dict[str, bytes]:
    """Each night's tables: the same names, different bytes (big enough for several chunks)."""
    return {
        name: b"".join(b"%s,night %d,row %d\n" % (name.encode(), number, i) for i in range(30000))
        for name in NAMES
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Dest:
    """A destination folder, and a way to look at it that bypasses the code under test."""

    kind: str
    folder: ObjectStoragePath
    #: Every entry in the folder, hidden temp files included.
    entries: Callable[[], list[str]]
    digest: Callable[[str], str]
    put: Callable[[str, bytes], None]
    #: Unfinished uploads into the folder (S3 multipart uploads; local and Azure: none to list).
    pending: Callable[[], list[object]]

    def digests(self) -> dict[str, str]:
        return {name: self.digest(name) for name in self.entries()}

    def visible(self) -> dict[str, str]:
        """What a reader of the folder sees under final names (a hidden temp file is no object)."""
        return {name: self.digest(name) for name in self.entries() if not is_partial_name(name)}


def _local(folder: ObjectStoragePath) -> Dest:
    root = Path(folder.path)

    def put(name: str, data: bytes) -> None:
        (root / name).write_bytes(data)

    return Dest(
        kind="local",
        folder=folder,
        entries=lambda: sorted(os.listdir(root)),
        digest=lambda name: sha((root / name).read_bytes()),
        put=put,
        pending=list,
    )


def _object_store(store: Store) -> Dest:
    return Dest(
        kind=store.folder.protocol,
        folder=store.folder,
        entries=store.names,
        digest=lambda name: store.read_back(name)[1],
        put=store.put,
        pending=getattr(store, "unfinished_uploads", list),
    )


@pytest.fixture(params=["local", "s3", "abfs"])
def dest(request: pytest.FixtureRequest) -> Dest:
    if request.param == "local":
        return _local(request.getfixturevalue("local_dir"))
    if request.param == "s3":
        from tests.fixtures.stores import _s3_store

        return _object_store(_s3_store(request.getfixturevalue("s3_server")))
    # The store fixture's abfs case: Azurite, attached under its own connection.
    azure = request.getfixturevalue("azure_attached")
    from tests.fixtures.stores import AzureStore, _fresh_prefix

    folder = ObjectStoragePath(azure.url(_fresh_prefix()), conn_id=azure.conn_id)
    return _object_store(AzureStore(folder=folder, conn_id=azure.conn_id, server=azure))


def land_night_1(tmp_path: Path, dest: Dest) -> dict[str, str]:
    archive = build_zip(tmp_path / "night1.zip", list(night(1).items()))
    extract_zip(archive, dest.folder)
    landed = dest.digests()
    assert landed == {name: sha(data) for name, data in night(1).items()}
    return landed


@contextmanager
def when_member_starts(number: int, action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` when extract_zip announces member ``number`` (the members before it are
    staged by then). It runs inside the extraction, as a kill or another writer would."""

    class Hook(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if record.msg.startswith("Extracting member %d") and record.args[0] == number:  # type: ignore[index]
                action()
            return True

    logger = logging.getLogger("airflow_provider_canvas_reports.storage.zipfiles")
    hook, level = Hook(), logger.level
    logger.addFilter(hook)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeFilter(hook)
        logger.setLevel(level)


# -- (1) a failed night leaves the previous night whole -------------------------------------------


def test_a_bad_crc_in_the_second_member_leaves_the_previous_night_whole(tmp_path, dest):
    before = land_night_1(tmp_path, dest)
    archive = build_zip(tmp_path / "night2.zip", list(night(2).items()), compression=zipfile.ZIP_STORED)
    corrupt_member_data(archive, "courses.csv")

    with pytest.raises(InvalidZipError) as excinfo:
        extract_zip(archive, dest.folder)

    assert dest.digests() == before  # users.csv is night 1's, and no temp file is left
    assert dest.pending() == []  # no unfinished upload either
    assert str(excinfo.value) == (
        "ZIP member 'courses.csv' is corrupt: CRC-32 mismatch. Download the report again. Nothing was "
        "written: the 1 member(s) already extracted and verified (users.csv) were discarded before any "
        "was committed; every object already in the folder is as it was."
    )


def test_a_task_killed_during_the_second_member_leaves_the_previous_night_whole(tmp_path, dest):
    # Airflow's timeout and SIGTERM raise BaseExceptions in the task, wherever it is.
    before = land_night_1(tmp_path, dest)
    archive = build_zip(tmp_path / "night2.zip", list(night(2).items()))

    def kill() -> None:
        raise TaskKilled("the task's timeout fired")

    with when_member_starts(2, kill), pytest.raises(TaskKilled):
        extract_zip(archive, dest.folder)

    assert dest.digests() == before
    assert dest.pending() == []


def test_a_store_error_on_the_second_member_leaves_the_previous_night_whole(tmp_path, local_dir):
    # A folder where the second member should land: the store refuses that member.
    dest = _local(local_dir)
    before = land_night_1(tmp_path, dest)
    os.mkdir(f"{local_dir.path}/new.csv")
    night_2 = night(2)
    archive = build_zip(
        tmp_path / "night2.zip",
        [("users.csv", night_2["users.csv"]), ("new.csv", b"x\n"), ("courses.csv", night_2["courses.csv"])],
    )

    with pytest.raises(StorageError, match=r"new\.csv is a folder") as excinfo:
        extract_zip(archive, local_dir)

    assert sorted(os.listdir(local_dir.path)) == sorted([*before, "new.csv"])
    assert {name: dest.digest(name) for name in before} == before
    assert "(users.csv) were discarded before any was committed" in str(excinfo.value)


# -- (2) nothing new under a final name until every member is verified ----------------------------


def test_nothing_new_is_visible_until_every_member_is_verified(tmp_path, dest):
    before = land_night_1(tmp_path, dest)
    archive = build_zip(tmp_path / "night2.zip", list(night(2).items()))
    seen: list[dict[str, str]] = []

    with (
        when_member_starts(2, lambda: seen.append(dest.visible())),
        when_member_starts(3, lambda: seen.append(dest.visible())),
    ):
        landed = extract_zip(archive, dest.folder)

    assert seen == [before, before]  # members 1 and 2 were staged, and invisible
    after = {name: sha(data) for name, data in night(2).items()}
    assert dest.digests() == after
    assert {obj.name: obj.sha256 for obj in landed} == after
    assert dest.pending() == []


# -- (3) overwrite='fail' ---------------------------------------------------------------------------


def test_fail_policy_writes_nothing_when_a_member_appears_during_the_extraction(tmp_path, dest):
    """Another writer creates the first member's name while the later ones are extracted: the
    check before the first commit catches it, and none of the ZIP's members ever appears."""
    archive = build_zip(tmp_path / "r.zip", list(night(2).items()))
    seen: list[list[str]] = []

    def another_writer() -> None:
        seen.append(sorted(dest.visible()))
        dest.put("users.csv", b"someone else's\n")

    with (
        when_member_starts(3, another_writer),
        pytest.raises(DestinationExistsError, match=r"users\.csv exists and overwrite='fail'") as excinfo,
    ):
        extract_zip(archive, dest.folder, overwrite="fail")

    assert "(users.csv, courses.csv, enrollments.csv) were discarded before any was committed" in str(
        excinfo.value
    )
    assert seen == [[]]  # users.csv and courses.csv were staged, not visible
    assert dest.entries() == ["users.csv"]  # and no temp file is left
    assert dest.digest("users.csv") == sha(b"someone else's\n")
    assert dest.pending() == []


# -- a commit that fails midway -----------------------------------------------------------------


def test_a_commit_that_fails_midway_names_what_was_committed_and_what_was_not(tmp_path, local_dir):
    """Rare: a rename refused after every member was verified. The committed member stays (it is
    complete and verified), the others keep night 1's objects, and the error names each."""
    dest = _local(local_dir)
    before = land_night_1(tmp_path, dest)
    archive = build_zip(tmp_path / "night2.zip", list(night(2).items()))

    def block_courses() -> None:  # courses.csv is staged by now; its rename will be refused
        os.replace(f"{local_dir.path}/courses.csv", f"{tmp_path}/courses.csv")
        os.makedirs(f"{local_dir.path}/courses.csv/in-the-way")

    with when_member_starts(3, block_courses), pytest.raises(StorageError) as excinfo:
        extract_zip(archive, local_dir)

    message = str(excinfo.value)
    assert message.startswith(
        f"Committing the verified members of ZIP 'night2.zip' to file://{local_dir.path} failed at 'courses.csv': "
    )
    assert message.endswith(
        "Committed (complete and verified, left in place): users.csv. NOT committed (their names keep what "
        "they held before): courses.csv, enrollments.csv. Retry the task to land the whole set."
    )
    assert sorted(os.listdir(local_dir.path)) == [*NAMES[1:], "users.csv"]  # no temp file left
    assert dest.digest("users.csv") == sha(night(2)["users.csv"])
    assert dest.digest("enrollments.csv") == before["enrollments.csv"]
