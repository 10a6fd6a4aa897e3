from __future__ import annotations

import socket

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_canvas_reports.storage import DestinationError, object_uri, resolve_destination
from airflow_provider_canvas_reports.storage.destination import connection_id, storage_kind


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("suffix", ["", "/"])
def test_file_url_resolves_to_a_local_folder(tmp_path, suffix):
    path = resolve_destination(f"file://{tmp_path}{suffix}")
    assert isinstance(path, ObjectStoragePath)
    assert path.path == str(tmp_path)
    assert storage_kind(path.fs) == "local"
    assert object_uri(path / "users.csv") == f"file://{tmp_path}/users.csv"


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST"])
def test_file_url_with_localhost_is_the_absolute_path(tmp_path, host):
    path = resolve_destination(f"file://{host}{tmp_path}/")
    assert path.path == str(tmp_path)
    assert object_uri(path / "users.csv") == f"file://{tmp_path}/users.csv"


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("file://data/reports/", "file:///data/reports/"),
        ("file://fileserver/share/x", "file:///fileserver/share/x"),
    ],
)
def test_file_url_with_another_host_is_refused_not_made_relative(url, fix):
    # ObjectStoragePath reads the host as a folder under the worker's current directory.
    with pytest.raises(DestinationError) as info:
        resolve_destination(url)
    assert str(info.value) == (
        f"Destination {url!r} names the host {url.split('/')[2]!r}: a file:// URL needs three slashes and an "
        f"absolute path, e.g. {fix!r}."
    )


def test_missing_local_folder_is_fine_it_is_created_on_write(tmp_path):
    path = resolve_destination(f"file://{tmp_path}/not/yet/")
    assert path.path == f"{tmp_path}/not/yet"


def test_bare_absolute_path_means_local(tmp_path):
    assert resolve_destination(str(tmp_path)).path == str(tmp_path)


def test_object_storage_path_is_accepted(tmp_path):
    given = ObjectStoragePath(f"file://{tmp_path}")
    assert resolve_destination(given).path == str(tmp_path)


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("", "empty"),
        ("reports/out", "has no scheme"),
        ("C:\\reports", "Windows path"),
    ],
)
def test_malformed_destinations(destination, message):
    with pytest.raises(DestinationError, match=message):
        resolve_destination(destination)


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("destination", "install"),
    [
        ("gs://bucket/reports/", "install apache-airflow-providers-google"),
        ("abfs://container/reports/", "install apache-airflow-providers-microsoft-azure"),
        ("nosuchfs://bucket/reports/", "registers a filesystem for 'nosuchfs://'"),
    ],
)
def test_unknown_scheme_names_the_scheme_and_what_to_install(destination, install):
    scheme = destination.split(":", 1)[0]
    with pytest.raises(DestinationError) as excinfo:
        resolve_destination(destination, "some_conn")
    message = str(excinfo.value)
    assert f"scheme '{scheme}' has no filesystem" in message
    assert install in message


def test_wrong_type_is_refused():
    with pytest.raises(DestinationError, match="URL string or an ObjectStoragePath"):
        resolve_destination(42)  # type: ignore[arg-type]


@pytest.mark.usefixtures("no_network")
def test_missing_connection_is_refused_before_any_network_access():
    with pytest.raises(DestinationError) as excinfo:
        resolve_destination("s3://bucket/reports/", "no_such_conn_4711")
    message = str(excinfo.value)
    assert "'no_such_conn_4711' is not defined" in message
    assert "AIRFLOW_CONN_NO_SUCH_CONN_4711" in message


def test_conflicting_connections_are_refused(s3_server):
    with pytest.raises(DestinationError, match="give the connection in one place only"):
        resolve_destination(f"s3://{s3_server.conn_id}@{s3_server.bucket}/x/", "other_conn")


def test_s3_folder_is_bound_to_the_connection(s3_server):
    path = resolve_destination(f"s3://{s3_server.bucket}/reports/", s3_server.conn_id)
    assert connection_id(path) == s3_server.conn_id
    assert storage_kind(path.fs) == "object_store"
    assert object_uri(path / "users.csv") == f"s3://{s3_server.bucket}/reports/users.csv"


def test_connection_in_the_url_is_used(s3_server):
    path = resolve_destination(f"s3://{s3_server.conn_id}@{s3_server.bucket}/reports/")
    assert connection_id(path) == s3_server.conn_id
    assert object_uri(path) == f"s3://{s3_server.bucket}/reports"


def test_connection_added_to_a_bare_object_storage_path(s3_server):
    path = resolve_destination(ObjectStoragePath(f"s3://{s3_server.bucket}/r/"), s3_server.conn_id)
    assert connection_id(path) == s3_server.conn_id


def test_local_file_is_not_a_folder(tmp_path):
    target = tmp_path / "users.csv"
    target.write_text("id\n")
    with pytest.raises(DestinationError, match="is a file, not a folder"):
        resolve_destination(f"file://{target}")


def test_s3_object_is_not_a_folder(s3_server):
    s3_server.client().put_object(Bucket=s3_server.bucket, Key="dest-is-a-file.csv", Body=b"x")
    with pytest.raises(DestinationError, match="is a file, not a folder"):
        resolve_destination(f"s3://{s3_server.bucket}/dest-is-a-file.csv", s3_server.conn_id)


def test_an_unreachable_store_is_a_destination_error_naming_it():
    # botocore's errors are not OSErrors: an endpoint nobody answers on came out as a bare
    # EndpointConnectionError traceback instead of the destination check's message.
    from tests.fixtures.processes import free_port
    from tests.fixtures.s3 import ACCESS_KEY, SECRET_KEY, _connection

    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        _connection(endpoint, (ACCESS_KEY, SECRET_KEY)) as conn_id,
        pytest.raises(DestinationError) as excinfo,
    ):
        resolve_destination("s3://nightly-lake/canvas/", conn_id)
    message = str(excinfo.value)
    assert message.startswith("Cannot inspect destination s3://nightly-lake/canvas")
    assert endpoint in message
    assert "Check that the bucket or folder exists and that the connection can reach it." in message
