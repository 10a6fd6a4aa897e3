"""Scripted and random faults: what goes wrong, where, and how often.

This module only decides which fault applies to a request; ``inject`` turns the
decision into bytes on the wire.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from .counters import ENDPOINTS

# Kinds that answer instead of the real handler.
PRE_KINDS = frozenset(
    {
        "500",
        "502",
        "503",
        "504",
        "reset",
        "html",
        "throttle",
        "throttle_bare",
        "redirect_loop",
        "auth_redirect",
        "expired",
        "404",
        "401",
    }
)
# Kinds that let the handler run, then spoil (or lose) its answer.
POST_KINDS = frozenset({"reset_after_send", "truncate", "wrong_length", "stall", "while1"})
# Kinds that only delay.
DELAY_KINDS = frozenset({"slow"})
FAULT_KINDS = PRE_KINDS | POST_KINDS | DELAY_KINDS


@dataclass
class Fault:
    """One scripted fault.

    - ``endpoint``: an endpoint name (``available``, ``start``, ``index``, ``status``,
      ``delete``, ``abort``, ``download``, ``files``, ``store``, ``login``) or ``"*"``.
    - ``kind``: ``"500"``, ``"502"``, ``"503"``, ``"504"``, ``"404"``, ``"401"``,
      ``"reset"`` (connection closed, no answer), ``"reset_after_send"`` (the request
      takes effect, then the connection drops: the lost-response case),
      ``"slow"`` (wait ``delay``, then answer), ``"stall"`` (send part of the body,
      wait ``delay``, send the rest), ``"truncate"`` (announce the full
      Content-Length, send ``fraction`` of the body, close), ``"wrong_length"`` (a
      well-formed but shorter body than the real one), ``"html"`` (200 text/html login
      page), ``"throttle"`` (the rate-limit answer of the configured mode),
      ``"throttle_bare"`` (a 429 without Retry-After, which Canvas may leave out),
      ``"redirect_loop"`` (302 back to the same URL), ``"auth_redirect"`` (302 to the
      login page), ``"expired"`` (the store's 403 for an expired link), ``"while1"``
      (JSON prefixed with ``while(1);``).
    - ``times``: how many matching requests it hits; ``None`` for all of them.
    - ``report_id``: only requests about this report (status, delete, abort, and the
      download chain of its file).
    """

    endpoint: str = "*"
    kind: str = "500"
    times: int | None = 1
    report_id: int | None = None
    delay: float = 1.0
    fraction: float = 0.5
    used: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.kind = str(self.kind)
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if self.endpoint != "*" and self.endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {self.endpoint!r}; expected '*' or one of {ENDPOINTS}")
        if not 0.0 <= self.fraction < 1.0:
            raise ValueError("fraction must be in [0, 1)")

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.used >= self.times

    def matches(self, endpoint: str, report_id: int | None) -> bool:
        if self.exhausted:
            return False
        if self.endpoint not in ("*", endpoint):
            return False
        return self.report_id is None or self.report_id == report_id


class FaultPlan:
    """Scripted faults (first match wins, in the order added) plus a random failure rate."""

    def __init__(
        self,
        seed: int = 0,
        fail_rate: float = 0.0,
        fail_kinds: Iterable[str] = ("500", "503", "reset"),
        fail_endpoints: Iterable[str] | None = None,
    ) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.fail_rate = fail_rate
        self.fail_kinds = tuple(str(k) for k in fail_kinds)
        for kind in self.fail_kinds:
            Fault(kind=kind)  # validates
        self.fail_endpoints = frozenset(fail_endpoints) if fail_endpoints is not None else None

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def extend(self, faults: Iterable[Fault]) -> None:
        for fault in faults:
            self.add(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def take(self, endpoint: str, report_id: int | None = None) -> Fault | None:
        """The fault to apply to this request, if any (consuming one of its uses)."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(endpoint, report_id):
                    fault.used += 1
                    return fault
        in_scope = self.fail_endpoints is None or endpoint in self.fail_endpoints
        if self.fail_rate > 0 and in_scope and self._rng.random() < self.fail_rate:
            kind = self._rng.choice(self.fail_kinds)
            fault = Fault(endpoint=endpoint, kind=kind, delay=2.0)
            fault.used = 1
            return fault
        return None
