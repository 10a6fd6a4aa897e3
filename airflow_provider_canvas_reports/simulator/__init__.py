"""A Canvas LMS account-reports server for developing and testing offline.

It follows Canvas's real behaviour, including the unpleasant parts: reports that end
with ``progress: 100`` and fail, downloads that redirect across two other hosts that
refuse the token, lowercase header names, throttling of parallel requests, lost
responses, truncated files, login pages instead of files.

Python::

    from airflow_provider_canvas_reports.simulator import CanvasSimulator, SimulatorConfig, Fault

    sim = CanvasSimulator(SimulatorConfig(users=500, run_seconds=2))
    with sim.run_in_thread() as running:      # three servers on 127.0.0.1, free ports
        running.url, running.files_url, running.store_url, running.token
        sim.faults.add(Fault(endpoint="status", kind="503", times=2))
        sim.script_report("provisioning_csv", "error")   # the next one fails
        sim.advance(60)                        # skip a minute of simulated time
        sim.counters.requests["status"], sim.reports[101].status

    # or, inside an event loop:  running = await sim.start(); ...; await sim.stop()

``SimulatorConfig`` documents every option (data size and seed, report timing, the
throttle, tokens, fault rates). Tokens map a token string to a ``TokenSpec``, a dict
of its fields (``{"permissions": True, "scopes_ok": True}``) or a bool; the default
is one token, ``canvas-simulator-token``.

Command line: ``python -m airflow_provider_canvas_reports.simulator --port 8900``
(also ``canvas-simulator``; ``--help`` lists the options). It prints the Canvas,
files and store URLs and the token, and serves until Ctrl-C or SIGTERM.
"""

from .config import DEFAULT_TOKEN, SimulatorConfig, TokenSpec
from .counters import ENDPOINTS, Counters
from .faults import FAULT_KINDS, Fault
from .server import CanvasSimulator, RunningSimulator
from .state import FATES, ReportState

__all__ = [
    "DEFAULT_TOKEN",
    "ENDPOINTS",
    "FATES",
    "FAULT_KINDS",
    "CanvasSimulator",
    "Counters",
    "Fault",
    "ReportState",
    "RunningSimulator",
    "SimulatorConfig",
    "TokenSpec",
]
