"""What the simulator saw: request counts for assertions and benchmarks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

ENDPOINTS = (
    "available",
    "start",
    "index",
    "status",
    "delete",
    "abort",
    "download",
    "files",
    "store",
    "login",
    "other",
)


@dataclass
class Counters:
    """Counts since start or the last ``reset()``.

    - ``requests``: requests per endpoint name (``available``, ``start``, ``index``,
      ``status``, ``delete``, ``abort``, ``download``, ``files``, ``store``, ``login``,
      ``other``), whatever their outcome.
    - ``starts``: reports created, per report type.
    - ``status_polls``: status requests per report id.
    - ``files_auth_headers``: requests to the files host or the store carrying an
      Authorization header (a correct client keeps this at 0).
    - ``throttled``: requests refused by the rate limiter.
    - ``faults``: injected faults per kind.
    - ``bytes_served``: file bytes sent by the store (or by a direct download).
    """

    requests: Counter[str] = field(default_factory=Counter)
    starts: Counter[str] = field(default_factory=Counter)
    status_polls: Counter[int] = field(default_factory=Counter)
    files_auth_headers: int = 0
    throttled: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    bytes_served: int = 0

    def reset(self) -> None:
        self.requests.clear()
        self.starts.clear()
        self.status_polls.clear()
        self.faults.clear()
        self.files_auth_headers = 0
        self.throttled = 0
        self.bytes_served = 0

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())
