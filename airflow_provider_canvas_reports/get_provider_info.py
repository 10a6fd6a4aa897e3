"""Provider registration: Airflow finds this through the ``apache_airflow_provider`` entry point.

Airflow validates the returned dict against its ``provider_info.schema.json`` and refuses the
provider unless ``package-name`` equals the normalised distribution name.

Connection form: since Airflow 3.2 the UI reads ``conn-fields`` and ``ui-field-behaviour`` from
here, without importing the hook. Airflow 3.1 ignores both keys and still asks the hook class
(``get_connection_form_widgets`` / ``get_ui_field_behaviour``), so the hook keeps those for 3.1;
3.2+ skips them when these keys are present.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_canvas_reports import __version__

_INTEGRATION = "Canvas LMS"
_PKG = "airflow_provider_canvas_reports"


def get_provider_info() -> dict[str, Any]:
    # Build a fresh dict on every call: Airflow mutates what it gets (adds "documentation-url").
    return {
        "package-name": "airflow-provider-canvas-reports",
        "name": "Canvas LMS Account Reports",
        "description": (
            "`Canvas LMS <https://www.instructure.com/canvas>`__ account reports: start a report, "
            "wait for it without holding a worker, and land its files in object storage."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://canvas.instructure.com/doc/api/account_reports.html",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.hooks.canvas"]}],
        "operators": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.operators.reports"]}],
        "sensors": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.sensors.reports"]}],
        "triggers": [{"integration-name": _INTEGRATION, "python-modules": [f"{_PKG}.triggers.reports"]}],
        "connection-types": [
            {
                "connection-type": "canvas",
                "hook-class-name": f"{_PKG}.hooks.canvas.CanvasHook",
                # 3.3's UI takes the display name from here without importing the hook;
                # 3.1/3.2 take CanvasHook.hook_name, which must say the same.
                "hook-name": "Canvas LMS",
                "conn-fields": {
                    "account_id": {
                        "label": "Account ID",
                        # Nullable: an empty form field must validate (it means "self").
                        "schema": {"type": ["string", "null"]},
                        "description": (
                            "Default Canvas account for the operators: a numeric account id, "
                            "'sis_account_id:<id>' or 'self'. Empty means 'self', the root account of "
                            "the token's domain. An operator's account_id argument overrides it."
                        ),
                    },
                    "allow_http": {
                        "label": "Allow plain HTTP",
                        "schema": {"type": ["boolean", "null"], "default": False},
                        "description": (
                            "Allow an http:// Canvas URL on a host that is not a loopback address. "
                            "The token then crosses the network unencrypted: only for trusted "
                            "networks. Loopback hosts (the simulator, a local Canvas) never need it."
                        ),
                    },
                },
                "ui-field-behaviour": {
                    # Canvas uses only the base URL and a token. The port belongs in the URL.
                    # "extra" stays: the 3.x UI cannot hide it anyway, and it carries the fields above.
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "Canvas URL", "password": "API access token"},
                    "placeholders": {
                        "host": "https://school.instructure.com",
                        "password": "Canvas: Account > Settings > New Access Token",
                        "account_id": "self",
                    },
                },
            }
        ],
        "extra-links": [f"{_PKG}.links.canvas.CanvasReportsLink"],
    }
