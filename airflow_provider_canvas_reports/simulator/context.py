"""The state shared by the three simulated hosts' handlers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .clock import Clock, TimeFormat
from .config import SimulatorConfig
from .counters import Counters
from .faults import FaultPlan
from .jobs import FileJobs
from .signing import Signer
from .state import ReportStore
from .throttle import Throttle


@dataclass
class SimContext:
    config: SimulatorConfig
    clock: Clock
    times: TimeFormat
    reports: ReportStore
    counters: Counters
    faults: FaultPlan
    throttle: Throttle
    jobs: FileJobs
    signer: Signer
    # Known once the servers are bound.
    canvas_url: str = ""
    files_url: str = ""
    store_url: str = ""
    # The files domain's sessions: cookie value -> (attachment id, expires at).
    file_sessions: dict[str, tuple[int, float]] = field(default_factory=dict)


CTX = web.AppKey("canvas_simulator", SimContext)
# Handler -> endpoint name ("status", "download" ...) for counting and faults.
ENDPOINT_NAMES = web.AppKey("canvas_simulator_endpoints", dict[Callable[..., Any], str])
