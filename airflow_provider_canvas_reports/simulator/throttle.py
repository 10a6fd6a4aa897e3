"""Canvas's request throttle: a leaky bucket per access token.

Each request adds an up-front cost to its token's bucket when it starts; when it
ends, that cost is replaced by what the request really cost. So requests running in
parallel hold their up-front cost at the same time and can overflow the bucket even
though the quota left after each one alone would be ample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .clock import Clock


@dataclass
class _Bucket:
    level: float = 0.0
    updated: float = 0.0


@dataclass
class Ticket:
    """One request's hold on its bucket, from start to end."""

    key: str
    throttled: bool
    retry_after: int
    settled: bool = False


class Throttle:
    def __init__(
        self,
        clock: Clock,
        mode: str | None,
        capacity: float,
        up_front: float,
        leak_per_second: float,
        actual_cost: float,
    ) -> None:
        self.clock = clock
        self.mode = mode
        self.capacity = capacity
        self.up_front = up_front
        self.leak = leak_per_second
        self.actual_cost = actual_cost
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, key: str) -> _Bucket:
        now = self.clock.now()
        bucket = self._buckets.setdefault(key, _Bucket(0.0, now))
        bucket.level = max(0.0, bucket.level - self.leak * max(0.0, now - bucket.updated))
        bucket.updated = now
        return bucket

    def reserve(self, key: str) -> Ticket:
        """Charge the up-front cost; the request is refused if the bucket overflows."""
        bucket = self._bucket(key)
        bucket.level += self.up_front
        over = self.mode is not None and bucket.level > self.capacity
        retry = 0
        if over:
            excess = bucket.level - self.capacity
            retry = max(1, math.ceil(excess / self.leak)) if self.leak > 0 else 60
        return Ticket(key, over, retry)

    def settle(self, ticket: Ticket) -> tuple[float, float]:
        """Refund the up-front cost down to the real cost; returns (cost, remaining)."""
        bucket = self._bucket(ticket.key)
        cost = 0.0 if ticket.throttled else self.actual_cost
        if not ticket.settled:
            bucket.level = max(0.0, bucket.level - self.up_front + cost)
            ticket.settled = True
        return cost, self.remaining(ticket.key)

    def remaining(self, key: str) -> float:
        return max(0.0, self.capacity - self._bucket(key).level)

    def reset(self) -> None:
        self._buckets.clear()
