"""Registration: what Airflow checks when it loads the provider, plus the connection form it shows.

The in-process tests are fast. The last three start Airflow in a subprocess (several seconds
each) because they check what users see: the CLI and the UI's connection-form metadata, through
Airflow's own provider discovery from the installed distribution's entry point.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from packaging.utils import canonicalize_name

from airflow_provider_canvas_reports.get_provider_info import get_provider_info

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the test environments run 3.11
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "airflow_provider_canvas_reports"
DIST = "airflow-provider-canvas-reports"
CONN_TYPE = "canvas"
HOOK = f"{PACKAGE}.hooks.canvas.CanvasHook"

# The public contract (shared DESIGN.md): class -> module. Users import these paths.
CONTRACT = {
    "CanvasHook": f"{PACKAGE}.hooks.canvas",
    "StartAccountReportOperator": f"{PACKAGE}.operators.reports",
    "DownloadReportOperator": f"{PACKAGE}.operators.reports",
    "ReportCompleteSensor": f"{PACKAGE}.sensors.reports",
    "ReportStatusTrigger": f"{PACKAGE}.triggers.reports",
}

# Formats the 3.2+ connection form understands for conn-fields (provider notes, Registration).
FORM_FORMATS = {"password", "multiline", "email", "url", "json", "date", "date-time", "time"}
STANDARD_FIELDS = {"host", "schema", "login", "password", "port", "extra", "description"}


def _airflow_json_schema(name: str) -> dict[str, Any]:
    return json.loads(importlib.resources.files("airflow").joinpath(name).read_text())


def _airflow_version() -> tuple[int, int]:
    major, minor = importlib.metadata.version("apache-airflow-core").split(".")[:2]
    return int(major), int(minor)


def _listed_modules() -> list[str]:
    info = get_provider_info()
    return [
        m
        for key in ("hooks", "operators", "sensors", "triggers")
        for e in info[key]
        for m in e["python-modules"]
    ]


def _listed_classes() -> list[str]:
    info = get_provider_info()
    return [c["hook-class-name"] for c in info["connection-types"]] + list(info["extra-links"])


def _connection_type() -> dict[str, Any]:
    (conn,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == CONN_TYPE]
    return conn


def _import_string(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


# --- the dict itself --------------------------------------------------------------------------


def test_validates_against_installed_airflow_schema() -> None:
    schema = _airflow_json_schema("provider_info.schema.json")
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    validator_cls(schema).validate(get_provider_info())


def test_package_name_is_normalised_distribution_name() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert get_provider_info()["package-name"] == canonicalize_name(project["name"]) == DIST


def test_each_call_returns_a_fresh_dict() -> None:
    # Airflow writes "documentation-url" into the dict it gets; that must not leak between calls.
    first = get_provider_info()
    first["documentation-url"] = "x"
    first["connection-types"][0]["conn-fields"].clear()
    second = get_provider_info()
    assert "documentation-url" not in second
    assert second["connection-types"][0]["conn-fields"]


def test_version_matches_distribution() -> None:
    assert get_provider_info()["versions"][0] == importlib.metadata.version(DIST)


def test_every_section_names_a_declared_integration() -> None:
    info = get_provider_info()
    integrations = {i["integration-name"] for i in info["integrations"]}
    for key in ("hooks", "operators", "sensors", "triggers"):
        assert info[key], key
        for entry in info[key]:
            assert entry["integration-name"] in integrations, key


# --- connection form (conn-fields / ui-field-behaviour, read by Airflow 3.2+) ----------------


def test_conn_fields_are_valid_json_schemas() -> None:
    fields = _connection_type()["conn-fields"]
    assert set(fields) == {"account_id", "allow_http"}
    for name, field in fields.items():
        assert set(field) <= {"label", "schema", "description"}, name
        assert field["label"], name
        assert field["description"], name
        schema = field["schema"]
        jsonschema.Draft7Validator.check_schema(schema)
        # Nullable, so an empty form field validates.
        assert "null" in schema["type"], name
        if "format" in schema:
            assert schema["format"] in FORM_FORMATS, name
        if "default" in schema:
            jsonschema.Draft7Validator(schema).validate(schema["default"])
    assert "string" in fields["account_id"]["schema"]["type"]
    assert "boolean" in fields["allow_http"]["schema"]["type"]
    assert fields["allow_http"]["schema"]["default"] is False


def test_ui_field_behaviour_validates_like_airflow_does() -> None:
    behaviour = _connection_type()["ui-field-behaviour"]
    # ProvidersManager converts the kebab-case keys before validating against this schema.
    converted = {
        "hidden_fields": behaviour["hidden-fields"],
        "relabeling": behaviour["relabeling"],
        "placeholders": behaviour["placeholders"],
    }
    jsonschema.Draft7Validator(_airflow_json_schema("customized_form_field_behaviours.schema.json")).validate(
        converted
    )
    assert set(behaviour["hidden-fields"]) <= STANDARD_FIELDS
    assert {"host", "password"}.isdisjoint(behaviour["hidden-fields"])
    assert behaviour["relabeling"] == {"host": "Canvas URL", "password": "API access token"}
    extra_names = set(_connection_type()["conn-fields"])
    assert set(behaviour["placeholders"]) <= STANDARD_FIELDS | extra_names


# --- everything listed imports ---------------------------------------------------------------


def test_entry_point_registered_in_installed_metadata() -> None:
    eps = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.dist is not None and canonicalize_name(ep.dist.name) == DIST
    ]
    assert [(ep.name, ep.value) for ep in eps] == [
        ("provider_info", f"{PACKAGE}.get_provider_info:get_provider_info")
    ], "not installed? run: uv pip install -e . --no-deps"
    assert eps[0].load()() == get_provider_info()


@pytest.mark.parametrize("module", _listed_modules())
def test_listed_module_imports(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize("path", _listed_classes())
def test_listed_class_imports(path: str) -> None:
    assert isinstance(_import_string(path), type)


@pytest.mark.parametrize(("name", "module"), CONTRACT.items())
def test_contract_class_at_its_public_path(name: str, module: str) -> None:
    assert isinstance(getattr(importlib.import_module(module), name), type)


def test_hook_class_agrees_with_provider_info() -> None:
    from airflow.sdk import BaseHook

    hook = _import_string(HOOK)
    assert issubclass(hook, BaseHook)
    # Airflow 3.1/3.2 read these attributes (3.3's UI reads hook-name from the provider info).
    assert hook.conn_type == CONN_TYPE
    assert hook.hook_name == _connection_type()["hook-name"]
    assert hook.default_conn_name == "canvas_default"
    assert isinstance(hook.conn_name_attr, str)
    assert hook.conn_name_attr


def test_extra_link_is_an_operator_link() -> None:
    from airflow.sdk import BaseOperatorLink

    for path in get_provider_info()["extra-links"]:
        assert issubclass(_import_string(path), BaseOperatorLink), path


# --- as Airflow sees it: CLI and UI metadata, in a subprocess ---------------------------------


def _airflow_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow-home"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # Provider import problems are logged, not raised: let them reach stderr for the message.
        AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
    )
    return env


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args, env=_airflow_env(tmp_path), capture_output=True, text=True, timeout=240, check=False
    )
    assert proc.returncode == 0, f"{args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _json_out(proc: subprocess.CompletedProcess[str]) -> Any:
    # Airflow may print log lines before the JSON document; the document is the last line.
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _airflow_cli() -> str:
    # The `airflow` script next to this interpreter: the venv under test, not one on PATH.
    return str(Path(sys.executable).with_name("airflow"))


def test_cli_providers_list_shows_provider(tmp_path: Path) -> None:
    rows = _json_out(_run([_airflow_cli(), "providers", "list", "-o", "json"], tmp_path))
    mine = [r for r in rows if r["package_name"] == DIST]
    assert mine, f"{DIST} not in `airflow providers list`: {[r['package_name'] for r in rows]}"
    assert mine[0]["version"] == importlib.metadata.version(DIST)


def test_cli_providers_hooks_shows_canvas_connection_type(tmp_path: Path) -> None:
    proc = _run([_airflow_cli(), "providers", "hooks", "-o", "json"], tmp_path)
    rows = {r["connection_type"]: r for r in _json_out(proc)}
    assert CONN_TYPE in rows, f"no {CONN_TYPE!r} connection type\n{proc.stderr}"
    # An import failure shows as "Error when importing hook!" in every column.
    assert rows[CONN_TYPE]["class"] == HOOK, f"{rows[CONN_TYPE]}\n{proc.stderr}"
    assert rows[CONN_TYPE]["package_name"] == DIST
    assert rows[CONN_TYPE]["hook_name"] == _connection_type()["hook-name"]


# What the api-server hands the React connection form (GET /ui/connections/hook_meta), built
# by Airflow's own service. On 3.1 the form still comes from the hook's legacy
# get_connection_form_widgets/get_ui_field_behaviour, so this also checks the hook provides them.
_HOOK_META_SCRIPT = textwrap.dedent(
    """
    import json
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    found = [m.model_dump(mode="json") for m in HookMetaService.hook_meta_data()]
    print(json.dumps([m for m in found if m["connection_type"] == "canvas"]))
    """
)


def test_ui_connection_form_metadata(tmp_path: Path) -> None:
    proc = _run([sys.executable, "-c", _HOOK_META_SCRIPT], tmp_path)
    found = _json_out(proc)
    hint = f"\n{proc.stderr}" + (
        "\n(Airflow 3.1 ignores conn-fields/ui-field-behaviour: CanvasHook must define "
        "get_connection_form_widgets() and get_ui_field_behaviour())"
        if _airflow_version() < (3, 2)
        else ""
    )
    assert len(found) == 1, f"the UI offers {len(found)} '{CONN_TYPE}' connection types{hint}"
    meta = found[0]
    assert meta["hook_class_name"] == HOOK, hint
    assert meta["hook_name"] == _connection_type()["hook-name"], hint

    std = meta["standard_fields"]
    assert std, hint
    assert std["host"]["title"] == "Canvas URL", hint
    assert std["host"]["placeholder"] == "https://school.instructure.com", hint
    assert std["password"]["title"] == "API access token", hint
    for hidden in ("url_schema", "port", "login"):
        assert std[hidden], (hidden, hint)
        assert std[hidden]["hidden"], (hidden, hint)

    extra = meta["extra_fields"] or {}
    assert set(extra) >= {"account_id", "allow_http"}, hint
    assert "string" in extra["account_id"]["schema"]["type"], hint
    assert "boolean" in extra["allow_http"]["schema"]["type"], hint
