"""Fixtures for the storage tests. The servers (S3, Azure) and `store` live in tests/fixtures, for reuse."""

from __future__ import annotations

import uuid

import pytest
from airflow.sdk import ObjectStoragePath

from tests.fixtures.s3 import S3Server, s3_iam_users, s3_put_only, s3_write_only
from tests.fixtures.stores import azure_attached, azure_server, s3_server, store

__all__ = [
    "azure_attached",
    "azure_server",
    "s3_iam_users",
    "s3_put_only",
    "s3_server",
    "s3_write_only",
    "store",
]


@pytest.fixture
def local_dir(tmp_path) -> ObjectStoragePath:
    """A fresh local destination folder as a ``file://`` ObjectStoragePath."""
    folder = tmp_path / "dest"
    folder.mkdir()
    return ObjectStoragePath(f"file://{folder}")


@pytest.fixture
def s3_dir(s3_server: S3Server) -> ObjectStoragePath:
    """A fresh prefix in the session bucket, bound to the moto connection."""
    prefix = f"t-{uuid.uuid4().hex[:12]}/reports/"
    return ObjectStoragePath(s3_server.url(prefix), conn_id=s3_server.conn_id)
