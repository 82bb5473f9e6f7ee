"""Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA1, 30 s steps, 6 digits.

What authenticator apps (and the tests) compute. ``verify`` accepts the code of the
current step or one step either side (clock drift) and returns the step it matched,
so the caller can refuse a second use of the same step (replay).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps either side of now


def new_secret() -> str:
    """A fresh 160-bit secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(20)).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    text = secret.replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def step_at(t: float) -> int:
    return int(t // STEP_SECONDS)


def code_at_step(secret: str, step: int) -> str:
    digest = hmac.new(_key(secret), struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def code_at(secret: str, t: float | None = None) -> str:
    return code_at_step(secret, step_at(time.time() if t is None else t))


def verify(secret: str, code: str, t: float | None = None, *, window: int = WINDOW) -> int | None:
    """The matching step, or None. Compares in constant time; never raises on bad input."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = step_at(time.time() if t is None else t)
    found = None
    for step in range(now - window, now + window + 1):
        if hmac.compare_digest(code_at_step(secret, step), code):
            found = step if found is None else found
    return found


def otpauth_uri(secret: str, account: str, issuer: str = "Sightline") -> str:
    """The provisioning URI authenticator apps read from a QR code."""
    label = quote(f"{issuer}:{account}")
    query = urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS,
                       "period": STEP_SECONDS})
    return f"otpauth://totp/{label}?{query}"


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.totp SECRET``: print the current code (for the demo and testers)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gateway.totp BASE32_SECRET", file=sys.stderr)
        return 2
    left = STEP_SECONDS - int(time.time()) % STEP_SECONDS
    print(f"{code_at(args[0])}  (valid for {left} more seconds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
