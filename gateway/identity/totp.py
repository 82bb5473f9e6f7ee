"""Time-based one-time passwords (RFC 6238): pyotp's HMAC-SHA1, 30 s steps, 6 digits.

What authenticator apps (and the tests) compute. ``verify`` accepts the code of the
current step or one step either side (clock drift) and returns the step it matched,
so the caller can refuse a second use of the same step (replay; sign-in keeps the
used steps in the store).
"""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pyotp
from pyotp.utils import strings_equal

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1  # steps either side of now


def new_secret() -> str:
    """A fresh 160-bit secret, base32 without padding (what authenticator apps expect)."""
    return pyotp.random_base32(32)


def _totp(secret: str) -> pyotp.TOTP:
    """Secrets are typed by people: spaces and lower case are allowed."""
    return pyotp.TOTP(secret.replace(" ", "").upper(), digits=DIGITS, interval=STEP_SECONDS)


def step_at(t: float) -> int:
    return int(t // STEP_SECONDS)


def code_at_step(secret: str, step: int) -> str:
    return _totp(secret).generate_otp(step)


def code_at(secret: str, t: float | None = None) -> str:
    return code_at_step(secret, step_at(time.time() if t is None else t))


def verify(secret: str, code: str | None, t: float | None = None, *, window: int = WINDOW) -> int | None:
    """The matching step, or None. Compares in constant time; never raises on bad input.

    Every step in the window is compared (no early return), so timing does not tell
    which step matched.
    """
    code = (code or "").strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    otp = _totp(secret)
    now = step_at(time.time() if t is None else t)
    found = None
    for step in range(now - window, now + window + 1):
        if strings_equal(otp.generate_otp(step), code):
            found = step if found is None else found
    return found


def otpauth_uri(secret: str, account: str, issuer: str = "Sightline") -> str:
    """The provisioning URI authenticator apps read from a QR code.

    pyotp writes the label's colon bare when it is given the issuer; it gets the whole
    ``issuer:account`` label instead so the colon is percent-encoded as it always was
    here (apps read both), and the ``issuer`` parameter is added after it.
    """
    label = _totp(secret).provisioning_uri(name=f"{issuer}:{account}")
    return f"{label}&{urlencode({'issuer': issuer})}"


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.identity.totp SECRET``: print the current code (for the demo and testers)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m gateway.identity.totp BASE32_SECRET", file=sys.stderr)
        return 2
    left = STEP_SECONDS - int(time.time()) % STEP_SECONDS
    print(f"{code_at(args[0])}  (valid for {left} more seconds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
