"""OpenLineage for the download: the Canvas report in, the landed objects out.

The naming helpers are plain functions with no OpenLineage import, so the provider works without
the ``openlineage`` extra; only :func:`download_lineage` imports it, lazily, and it is called
only by the OpenLineage listener (which exists only when that provider is installed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

# fsspec/Airflow schemes -> the scheme OpenLineage's naming spec uses for that store.
_OL_SCHEME = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfs": "abfss", "az": "abfss", "local": "file"}


def canvas_dataset(base_url: str, account: str, report: str) -> tuple[str, str]:
    """(namespace, name) of a Canvas report: the Canvas origin, and ``<account>/<report>``.

    The namespace is scheme + host (+ port) only: never a path, query or credential.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme or 'https'}://{netloc}", f"{account}/{report}"


def object_dataset(uri: str) -> tuple[str, str]:
    """(namespace, name) of a landed object, following OpenLineage's dataset naming.

    ``s3://bucket/key`` -> (``s3://bucket``, ``key``); ``file:///a/b`` -> (``file``, ``/a/b``).
    """
    parts = urlsplit(uri)
    scheme = _OL_SCHEME.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme == "file":
        return "file", parts.path
    return f"{scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"


def download_lineage(
    *,
    canvas_base_url: str,
    account: str,
    report: str,
    report_id: int | str,
    landed: Sequence[Mapping[str, Any]],
) -> OperatorLineage:
    """OperatorLineage for a finished download (inputs: the report; outputs: each object)."""
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        DocumentationDatasetFacet,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    namespace, name = canvas_dataset(canvas_base_url, account, report)
    source = Dataset(
        namespace=namespace,
        name=name,
        facets={
            "documentation": DocumentationDatasetFacet(
                description=f"Canvas LMS account report {report} (run #{report_id}) of account {account}"
            )
        },
    )
    outputs = []
    for obj in landed:
        out_namespace, out_name = object_dataset(str(obj["uri"]))
        outputs.append(
            OutputDataset(
                namespace=out_namespace,
                name=out_name,
                outputFacets={
                    "outputStatistics": OutputStatisticsOutputDatasetFacet(size=int(obj["size"]), fileCount=1)
                },
            )
        )
    return OperatorLineage(inputs=[source], outputs=outputs)
