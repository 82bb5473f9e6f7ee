"""HMAC signatures for webhooks, outbound (notifications) and inbound (panic triggers).

Header format (``X-Sightline-Signature``)::

    t=<unix seconds>,v1=<hex HMAC-SHA256 of f"{t}.".encode() + body>

The timestamp is inside the MAC, so a captured request cannot be replayed once it is
older than the tolerance. A header may carry several ``v1=`` values (a sender rotating
its secret signs with both); it verifies if any of them matches.

Stdlib only and free of gateway state, so both the notifier and the inbound webhook
endpoints import it without pulling in each other.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

SIGNATURE_HEADER = "X-Sightline-Signature"
EVENT_HEADER = "X-Sightline-Event"
DELIVERY_HEADER = "X-Sightline-Delivery"
DEFAULT_TOLERANCE = 300
_MAX_HEADER = 2048


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _mac(secret: str | bytes, body: bytes, t: int) -> str:
    return hmac.new(_key(secret), f"{t}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def sign(secret: str | bytes, body: bytes, t: int) -> str:
    """The ``X-Sightline-Signature`` value for ``body`` sent at unix time ``t``."""
    if not secret:
        raise ValueError("a webhook secret must not be empty")
    return f"t={int(t)},v1={_mac(secret, body, int(t))}"


def verify(
    secret: str | bytes,
    body: bytes,
    header: str | None,
    now: float | datetime,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """True iff ``header`` is a well-formed signature of ``body`` with ``secret`` whose
    timestamp is within ``tolerance`` seconds of ``now`` (either side). Never raises on
    bad input; compares in constant time."""
    if not secret or not isinstance(header, str) or len(header) > _MAX_HEADER or not isinstance(body, bytes):
        return False
    t: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            if t is not None or not value.isascii() or not value.isdigit() or len(value) > 12:
                return False
            t = int(value)
        elif key == "v1":
            if len(value) != 64 or not value.isascii():
                return False
            candidates.append(value.lower())
        # other schemes (v0, v2, ...) are ignored, so senders can add one without breaking us
    if t is None or not candidates:
        return False
    now_s = now.timestamp() if isinstance(now, datetime) else float(now)
    if abs(now_s - t) > tolerance:
        return False
    expected = _mac(secret, body, t)
    ok = False
    for candidate in candidates:  # no early exit: time does not depend on which one matched
        ok |= hmac.compare_digest(expected, candidate)
    return ok
