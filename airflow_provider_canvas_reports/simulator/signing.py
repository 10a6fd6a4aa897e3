"""Token-free signed links for the files host and presigned-style store URLs.

The links carry their own proof (an HMAC and an expiry), as Canvas's files domain and
S3 presigned URLs do, so a client never needs to send its token past the Canvas host.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Literal
from urllib.parse import quote

from .clock import TimeFormat

Verdict = Literal["ok", "expired", "bad"]


class Signer:
    def __init__(self, times: TimeFormat, secret: bytes | None = None) -> None:
        self._secret = secret or secrets.token_bytes(32)
        self._times = times

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._secret, "|".join(parts).encode(), hashlib.sha256).hexdigest()

    # Files host: /files/<attachment id>/<expires>-<signature>
    def files_path(self, attachment_id: int, expires: float) -> str:
        exp = str(int(expires))
        return f"/files/{attachment_id}/{exp}-{self._sign('files', str(attachment_id), exp)}"

    def check_files(self, attachment_id: str, ticket: str, now: float) -> Verdict:
        exp, _, sig = ticket.partition("-")
        if not exp.isdigit() or not hmac.compare_digest(sig, self._sign("files", attachment_id, exp)):
            return "bad"
        return "expired" if now > int(exp) else "ok"

    # Store: /objects/<key>?X-Amz-...&X-Amz-Signature=...
    def store_path(self, key: str, now: float, ttl: float) -> str:
        date = self._times.amz_date(now)
        expires = str(max(1, int(ttl)))
        query = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"SIMULATOR/{date[:8]}/us-east-1/s3/aws4_request",
            "X-Amz-Date": date,
            "X-Amz-Expires": expires,
            "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": self._sign("store", key, date, expires),
        }
        encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
        return f"/objects/{quote(key)}?{encoded}"

    def check_store(self, key: str, query: Mapping[str, str], now: float) -> Verdict:
        date = query.get("X-Amz-Date", "")
        expires = query.get("X-Amz-Expires", "")
        sig = query.get("X-Amz-Signature", "")
        if not expires.isdigit() or not hmac.compare_digest(sig, self._sign("store", key, date, expires)):
            return "bad"
        issued = datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
        # The date has whole seconds only: allow for the truncation.
        return "expired" if now > issued + int(expires) + 1 else "ok"
