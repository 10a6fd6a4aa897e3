"""extract_zip: safe names, ZIP bombs, broken archives, all-or-nothing, on local disk and S3."""

from __future__ import annotations

import os
import stat
import time
import zipfile

import pytest
from airflow.sdk import ObjectStoragePath
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_canvas_reports.storage import (
    DestinationExistsError,
    InvalidZipError,
    UnsafeNameError,
    ZipBombError,
    ZipLimits,
    extract_zip,
    member_object_name,
)
from tests.fixtures.stores import S3Store

from .helpers import (
    MiB,
    TaskKilled,
    build_zip,
    corrupt_member_data,
    data_bytes,
    duplicate_entry,
    patch_member,
    sha256,
    zip_with_zeros,
)

USERS = b"user_id,login_id,status\n" + b"".join(b"u%d,login%d,active\n" % (i, i) for i in range(20000))
COURSES = b"course_id,short_name,status\n" + b"c1,Math,active\n"


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder.path)) if os.path.isdir(folder.path) else []


def read(folder, name) -> bytes:
    with open(f"{folder.path}/{name}", "rb") as f:
        return f.read()


# -- the normal case ---------------------------------------------------------------------------


def test_members_land_one_object_each(tmp_path, local_dir):
    directory = zipfile.ZipInfo("reports/")
    archive = build_zip(
        tmp_path / "report.zip",
        [
            ("users.csv", USERS),
            (directory, b""),
            ("reports/courses.csv", COURSES),
            ("empty.csv", b""),
        ],
    )
    stored = tmp_path / "stored.zip"
    build_zip(stored, [("random.bin", data_bytes(2 * MiB))], compression=zipfile.ZIP_STORED)

    landed = extract_zip(archive, local_dir) + extract_zip(stored, local_dir)

    assert [obj.name for obj in landed] == ["users.csv", "reports_courses.csv", "empty.csv", "random.bin"]
    assert listing(local_dir) == ["empty.csv", "random.bin", "reports_courses.csv", "users.csv"]
    assert read(local_dir, "users.csv") == USERS
    assert read(local_dir, "reports_courses.csv") == COURSES
    assert read(local_dir, "empty.csv") == b""
    assert read(local_dir, "random.bin") == data_bytes(2 * MiB)
    assert landed[0].as_dict() == {
        "uri": f"file://{local_dir.path}/users.csv",
        "name": "users.csv",
        "size": len(USERS),
        "sha256": sha256(USERS),
    }
    assert landed[2].size == 0
    assert landed[2].sha256 == sha256(b"")


def test_a_zip_without_files_lands_nothing(tmp_path, local_dir):
    archive = build_zip(tmp_path / "empty.zip", [])
    assert extract_zip(archive, local_dir) == []


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("users.csv", "users.csv"),
        ("a/b/users.csv", "a_b_users.csv"),
        ("./users.csv", "users.csv"),
        ("a//b.csv", "a_b.csv"),
        # mgp_grade_export_csv names members after terms, and term names hold '/'.
        ("Semester 1 2025/26.csv", "Semester 1 2025_26.csv"),
        ("Fall 2025 / Spring 2026.csv", "Fall 2025 _ Spring 2026.csv"),
    ],
)
def test_member_object_name_keeps_the_whole_name(raw, expected):
    assert member_object_name(raw) == expected


@pytest.mark.parametrize(
    ("evil", "problem"),
    [
        ("../x.csv", "path traversal"),
        ("a/../../b.csv", "path traversal"),
        ("a/../b.csv", "path traversal"),
        ("/etc/passwd", "absolute path"),
        ("..\\x.csv", "backslash"),
        ("C:/x.csv", "drive letter"),
        ("./.hidden", "file name is not usable"),
        ("a/x\u202e.csv", "file name is not usable"),
        ("a/b\nc.csv", "file name is not usable"),
        ("../", "path traversal"),  # even as a (skipped) directory entry
    ],
)
def test_unsafe_members_refuse_the_whole_zip(tmp_path, local_dir, evil, problem):
    archive = build_zip(tmp_path / "evil.zip", [("users.csv", USERS), (evil, b"pwned")])
    with pytest.raises(UnsafeNameError) as excinfo:
        extract_zip(archive, local_dir)
    assert problem in str(excinfo.value)
    assert "nothing was written" in str(excinfo.value)
    assert listing(local_dir) == []
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    "names", [("a/users.csv", "a_users.csv"), ("users.csv", "Users.csv"), ("users.csv", " users.csv")]
)
def test_names_that_collide_after_sanitising_are_refused(tmp_path, local_dir, names):
    archive = build_zip(tmp_path / "dup.zip", [(names[0], b"1"), (names[1], b"2")])
    with pytest.raises(UnsafeNameError, match="would both land as"):
        extract_zip(archive, local_dir)
    assert listing(local_dir) == []


def test_symlink_members_are_refused(tmp_path, local_dir):
    link = zipfile.ZipInfo("passwd.csv")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = build_zip(tmp_path / "link.zip", [("users.csv", USERS), (link, b"/etc/passwd")])
    with pytest.raises(InvalidZipError, match="symbolic link"):
        extract_zip(archive, local_dir)
    assert listing(local_dir) == []


# -- broken archives ---------------------------------------------------------------------------


def test_encrypted_members_are_refused(tmp_path, local_dir):
    archive = build_zip(tmp_path / "enc.zip", [("users.csv", USERS), ("secret.csv", b"x" * 100)])
    patch_member(archive, "secret.csv", flag_bits_or=0x1)
    with pytest.raises(InvalidZipError, match="encrypted"):
        extract_zip(archive, local_dir)
    assert listing(local_dir) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"this is not a zip at all" * 100,
        lambda data: data[: len(data) // 2],  # central directory cut off
        lambda data: b"",
    ],
)
def test_unreadable_zips_are_refused(tmp_path, local_dir, damage):
    archive = build_zip(tmp_path / "r.zip", [("users.csv", USERS), ("courses.csv", COURSES)])
    archive.write_bytes(damage(archive.read_bytes()))
    with pytest.raises(InvalidZipError, match="not a readable ZIP"):
        extract_zip(archive, local_dir)
    assert listing(local_dir) == []


def test_unsupported_compression_is_refused(tmp_path, local_dir):
    archive = build_zip(tmp_path / "bz.zip", [("users.csv", USERS)], compression=zipfile.ZIP_BZIP2)
    with pytest.raises(InvalidZipError, match="compression method 12"):
        extract_zip(archive, local_dir)
    assert listing(local_dir) == []


def test_corrupt_member_data_commits_nothing(tmp_path, local_dir):
    archive = build_zip(
        tmp_path / "crc.zip",
        [("users.csv", USERS), ("courses.csv", COURSES * 100)],
        compression=zipfile.ZIP_STORED,
    )
    corrupt_member_data(archive, "courses.csv")
    with pytest.raises(InvalidZipError) as excinfo:
        extract_zip(archive, local_dir)
    message = str(excinfo.value)
    assert "'courses.csv' is corrupt: CRC-32 mismatch" in message
    assert (
        "Nothing was written: the 1 member(s) already extracted and verified (users.csv) were discarded"
        in message
    )
    assert listing(local_dir) == []  # no temp file either


class _KilledWhileWriting(MemoryFileSystem):
    """A store on which the task is killed (timeout, SIGTERM) while it writes `courses.csv`."""

    def __init__(self) -> None:
        super().__init__()
        self.opened_for_writing: list[str] = []

    def _open(self, path, mode="rb", **kwargs):
        if "w" in mode:
            self.opened_for_writing.append(path)
            if "courses.csv" in path:
                raise TaskKilled("the task's timeout fired")
        return super()._open(path, mode, **kwargs)


def test_a_task_killed_mid_extraction_leaves_nothing_and_stays_killed(tmp_path):
    # Airflow's timeout and SIGTERM are BaseExceptions: no error message is owed, but no
    # half-extracted set may stay behind either.
    from airflow.sdk.io import attach

    store = _KilledWhileWriting()
    # attach() keeps the first store of a (protocol, conn_id): a conn_id of this test's own.
    conn_id = f"killed-{time.monotonic_ns()}"
    attach(protocol="memory", conn_id=conn_id, fs=store)
    folder = ObjectStoragePath(f"memory://canvas-killed-{os.getpid()}/reports/", conn_id=conn_id)
    archive = build_zip(tmp_path / "set.zip", [("users.csv", USERS), ("courses.csv", COURSES)])
    try:
        assert folder.fs is store
        with pytest.raises(TaskKilled):
            extract_zip(archive, folder)

        assert any("users.csv" in path for path in store.opened_for_writing)  # it had been staged
        assert store.find(folder.path) == []  # and was discarded, temp object included
    finally:
        if store.exists(folder.path):
            store.rm(folder.path, recursive=True)


# -- ZIP bombs ---------------------------------------------------------------------------------


def test_highly_compressed_member_is_a_bomb_with_default_limits(tmp_path, local_dir):
    archive = zip_with_zeros(tmp_path / "bomb.zip", "users.csv", 64 * MiB, first=("ok.csv", b"1"))
    with pytest.raises(ZipBombError, match=r"'users.csv' expands \d+x .* over max_ratio=200"):
        extract_zip(archive, local_dir)
    assert listing(local_dir) == []


def test_small_repetitive_members_are_not_ratio_checked(tmp_path, local_dir):
    archive = zip_with_zeros(tmp_path / "zeros.zip", "blank.csv", 512 * 1024)
    (landed,) = extract_zip(archive, local_dir)
    assert landed.size == 512 * 1024


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        (ZipLimits(max_members=2), "has 3 entries, more than max_members=2"),
        (ZipLimits(max_member_bytes=len(USERS) - 1), "over max_member_bytes"),
        (ZipLimits(max_total_bytes=len(USERS) + 10), "more than max_total_bytes"),
        (ZipLimits(max_ratio=2, ratio_check_min_bytes=0), "over max_ratio=2"),
    ],
)
def test_declared_sizes_over_the_limits_are_refused(tmp_path, local_dir, limits, match):
    archive = build_zip(
        tmp_path / "z.zip", [("users.csv", USERS), ("courses.csv", COURSES), ("x.csv", USERS)]
    )
    with pytest.raises(ZipBombError, match=match):
        extract_zip(archive, local_dir, limits=limits)
    assert listing(local_dir) == []


def test_member_that_lies_about_its_size_is_caught_while_decompressing(tmp_path, local_dir):
    """The header declares 1000 bytes (passes every check); the data inflates to 32 MiB."""
    archive = zip_with_zeros(tmp_path / "liar.zip", "users.csv", 32 * MiB, first=("ok.csv", b"fine"))
    patch_member(archive, "users.csv", file_size=1000)
    assert zipfile.ZipFile(archive).getinfo("users.csv").file_size == 1000
    with pytest.raises(ZipBombError) as excinfo:
        extract_zip(archive, local_dir)
    message = str(excinfo.value)
    assert "decompresses to more than the 1000 bytes its header declares" in message
    assert "the 1 member(s) already extracted and verified (ok.csv) were discarded" in message
    assert listing(local_dir) == []


def test_overlapping_entries_are_refused(tmp_path, local_dir):
    """Many directory entries sharing one compressed stream (the "better ZIP bomb" trick)."""
    archive = build_zip(tmp_path / "overlap.zip", [("a.csv", USERS)])
    duplicate_entry(archive, "a.csv", "b.csv")
    assert [i.header_offset for i in zipfile.ZipFile(archive).infolist()] == [0, 0]
    with pytest.raises(ZipBombError, match="overlaps"):
        extract_zip(archive, local_dir)
    assert listing(local_dir) == []


@pytest.mark.parametrize("field", ["max_members", "max_member_bytes", "max_total_bytes", "max_ratio"])
def test_limits_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        ZipLimits(**{field: 0})


# -- overwrite policies ------------------------------------------------------------------------


def test_fail_policy_checks_every_target_before_writing(tmp_path, local_dir):
    archive = build_zip(tmp_path / "r.zip", [("users.csv", USERS), ("courses.csv", COURSES)])
    with open(f"{local_dir.path}/courses.csv", "wb") as f:
        f.write(b"existing")
    with pytest.raises(DestinationExistsError, match=r"courses\.csv exists and overwrite='fail'"):
        extract_zip(archive, local_dir, overwrite="fail")
    assert listing(local_dir) == ["courses.csv"]
    assert read(local_dir, "courses.csv") == b"existing"


def test_skip_identical_reports_kept_objects_and_never_rolls_them_back(tmp_path, local_dir):
    good = build_zip(tmp_path / "good.zip", [("users.csv", USERS), ("courses.csv", COURSES)])
    first = extract_zip(good, local_dir)
    again = extract_zip(good, local_dir, overwrite="skip_identical")
    assert [o.skipped for o in again] == [True, True]
    assert [o.as_dict() for o in again] == [o.as_dict() for o in first]

    bad = build_zip(tmp_path / "bad.zip", [("users.csv", USERS), ("new.csv", b"n" * 100)], zipfile.ZIP_STORED)
    corrupt_member_data(bad, "new.csv")
    with pytest.raises(InvalidZipError, match="Nothing was written"):
        extract_zip(bad, local_dir, overwrite="skip_identical")
    assert listing(local_dir) == ["courses.csv", "users.csv"]


# -- S3 ----------------------------------------------------------------------------------------


def test_extract_to_s3_and_discard_on_s3(tmp_path, s3_server, s3_dir):
    prefix = s3_dir.path.split("/", 1)[1]
    archive = build_zip(tmp_path / "r.zip", [("users.csv", USERS), ("courses.csv", COURSES)])
    landed = extract_zip(archive, s3_dir)
    assert [o.uri for o in landed] == [
        f"s3://{s3_server.bucket}/{prefix}/users.csv",
        f"s3://{s3_server.bucket}/{prefix}/courses.csv",
    ]
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=f"{prefix}/users.csv")["Body"].read()
    assert body == USERS

    bad = tmp_path / "bad.zip"
    build_zip(bad, [("a.csv", USERS), ("b.csv", COURSES * 50)], compression=zipfile.ZIP_STORED)
    corrupt_member_data(bad, "b.csv")
    with pytest.raises(InvalidZipError, match=r"verified \(a.csv\) were discarded"):
        extract_zip(bad, s3_dir)
    assert sorted(s3_server.keys(prefix=prefix)) == [f"{prefix}/courses.csv", f"{prefix}/users.csv"]
    assert s3_server.pending_uploads(prefix=prefix) == []


def test_a_failed_extraction_discards_exactly_what_it_staged_whatever_the_name(tmp_path, store):
    # Member names come from Canvas (mgp_grade_export_csv names them after terms): brackets, stars
    # and question marks are glob characters to s3fs's rm, so nothing may be removed by pattern.
    store.put("Fall 2025 1.csv", b"someone else's object")
    bad = tmp_path / "bad.zip"
    build_zip(
        bad,
        [("Fall 2025 [1].csv", USERS), ("Term *?.csv", USERS), ("b.csv", COURSES * 50)],
        compression=zipfile.ZIP_STORED,
    )
    corrupt_member_data(bad, "b.csv")
    with pytest.raises(
        InvalidZipError, match=r"verified \(Fall 2025 \[1\].csv, Term \*\?.csv\) were discarded"
    ):
        extract_zip(bad, store.folder)
    assert store.names() == ["Fall 2025 1.csv"]
    assert store.read_back("Fall 2025 1.csv")[0] == len(b"someone else's object")
    if isinstance(store, S3Store):
        assert store.unfinished_uploads() == []


def test_landing_names_are_the_names_extraction_writes(tmp_path):
    from airflow_provider_canvas_reports.storage.zipfiles import landing_names

    archive = build_zip(
        tmp_path / "r.zip",
        [
            ("terms/", b""),
            ("terms/Fall 2025 [1].csv", b"a\n"),
            ("users.csv", b"b\n"),
            ("../escape.csv", b"c\n"),
        ],
    )
    assert landing_names(archive) == ["terms_Fall 2025 [1].csv", "users.csv"]
    (tmp_path / "not.zip").write_bytes(b"<html>login</html>")
    assert landing_names(tmp_path / "not.zip") == []
