"""Configuration of the Canvas simulator: one dataclass, validated once."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# A public, documented default for a local simulator, not a secret.
DEFAULT_TOKEN = "canvas-simulator-token"  # noqa: S105

ThrottleMode = Literal["429", "403"]


@dataclass(frozen=True)
class TokenSpec:
    """What a configured access token may do.

    ``permissions=False`` models a valid token whose user lacks ``read_reports``;
    ``scopes_ok=False`` models a scoped developer key that lacks the report scopes.
    """

    permissions: bool = True
    scopes_ok: bool = True
    user_id: int = 1
    user_name: str = "Simulated Admin"


def _token_spec(value: TokenSpec | Mapping[str, Any] | bool | None) -> TokenSpec:
    if isinstance(value, TokenSpec):
        return value
    if value is None or value is True:
        return TokenSpec()
    if value is False:
        return TokenSpec(permissions=False)
    return TokenSpec(**dict(value))


@dataclass
class SimulatorConfig:
    """Everything that shapes the simulated Canvas.

    ``tokens`` maps a token string to a :class:`TokenSpec`, a dict of its fields
    (``{"permissions": True, "scopes_ok": True}``), or a bare bool (``False`` = no
    permission). Durations are in seconds of the simulator's clock, which is real
    time unless ``clock`` is given or ``CanvasSimulator.advance`` is used.
    """

    tokens: Mapping[str, TokenSpec | Mapping[str, Any] | bool | None] = field(
        default_factory=lambda: {DEFAULT_TOKEN: TokenSpec()}
    )
    # Data size: everything else scales from the number of users.
    users: int = 2000
    seed: int = 1
    # Each report file's CSV data is extended with more deterministic rows until it
    # holds at least this many (uncompressed) bytes; split across ZIP members.
    pad_to_bytes: int | None = None
    # Report lifecycle.
    queue_seconds: float = 0.0
    run_seconds: float = 1.0
    compile_seconds: float = 0.0
    # Canvas runs report jobs one at a time per root account; off by default so
    # parallel tests stay predictable.
    serialize_jobs: bool = False
    # Throttling: leaky bucket per token.
    throttle: ThrottleMode | None = "429"
    bucket_capacity: float = 700.0
    request_cost: float = 50.0
    leak_per_second: float = 10.0
    # What a request finally costs once it ends (Canvas: CPU + DB seconds); the
    # up-front request_cost is refunded down to this.
    actual_cost: float = 1.0
    # Added processing time for each Canvas API request, so parallel requests overlap
    # inside the bucket as they do against a busy Canvas.
    latency: float = 0.0
    # Response shape.
    legacy_fields: bool = False
    direct_download: bool = False
    utc_offset_minutes: int = -360
    link_ttl_seconds: float = 300.0
    # Limit the report catalogue (an empty list models an unconfigured plugin).
    reports: Sequence[str] | None = None
    # Files.
    data_dir: str | Path | None = None
    zip_compresslevel: int = 1
    generation_workers: int = 2
    # Time source (epoch seconds); real time when None.
    clock: Callable[[], float] | None = None
    # Random failures (0.0 = none) drawn from fail_kinds on fail_endpoints.
    fail_rate: float = 0.0
    fail_kinds: Sequence[str] = ("500", "503", "reset")
    fail_endpoints: Sequence[str] | None = None
    # Network.
    host: str = "127.0.0.1"
    port: int = 0
    files_port: int = 0
    store_port: int = 0
    access_log: bool = False

    def __post_init__(self) -> None:
        self.tokens = {str(k): _token_spec(v) for k, v in self.tokens.items()}
        if self.throttle is not None:
            self.throttle = str(self.throttle)  # type: ignore[assignment]
            if self.throttle not in ("429", "403"):
                raise ValueError(f"throttle must be '429', '403' or None, not {self.throttle!r}")
        if self.users < 1:
            raise ValueError("users must be at least 1")
        for name in ("queue_seconds", "run_seconds", "compile_seconds", "latency"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError("fail_rate must be between 0 and 1")

    @property
    def token_specs(self) -> dict[str, TokenSpec]:
        return dict(self.tokens)  # type: ignore[arg-type]

    @property
    def primary_token(self) -> str:
        """The first token that can read reports: the one to hand to users."""
        specs = self.token_specs
        for token, spec in specs.items():
            if spec.permissions and spec.scopes_ok:
                return token
        return next(iter(specs), "")
