"""A Canvas LMS account-reports server for developing and testing offline.

It follows Canvas's real behaviour, including the unpleasant parts: cross-host
download redirects, progress 100 on failure, lowercase headers, throttling of
parallel requests, lost responses, truncated downloads.

    from airflow_provider_canvas_reports.simulator import CanvasSimulator, SimulatorConfig, Fault

    sim = CanvasSimulator(SimulatorConfig(users=500, run_seconds=2))
    with sim.run_in_thread() as running:
        ...  # point a client at running.url with running.token

Or from a shell: ``python -m airflow_provider_canvas_reports.simulator --port 8900``.
"""

from .config import DEFAULT_TOKEN, SimulatorConfig, TokenSpec
from .counters import Counters
from .faults import FAULT_KINDS, Fault
from .server import CanvasSimulator, RunningSimulator
from .state import FATES, ReportState

__all__ = [
    "DEFAULT_TOKEN",
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
