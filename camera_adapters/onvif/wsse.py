"""WS-UsernameToken (PasswordDigest) with ``Created`` on the camera's clock.

Cameras refuse tokens whose ``Created`` is more than a few seconds from their own
clock, and many cameras have never seen NTP; so we stamp tokens with our time plus
the offset measured by GetSystemDateAndTime rather than asking the site to fix clocks.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone

from lxml import etree

from .namespaces import BASE64_BINARY, PASSWORD_DIGEST, WSSE, WSU


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """Base64(SHA1(nonce + created + password)), as the UsernameToken profile defines."""
    raw = hashlib.sha1(nonce + created.encode() + password.encode("utf-8")).digest()
    return base64.b64encode(raw).decode("ascii")


def format_created(epoch: float) -> str:
    """Whole-second Zulu time: some firmwares (Hikvision) reject fractions or ``+00:00``."""
    return datetime.fromtimestamp(int(epoch), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def security_header(username: str, password: str, *, clock_offset: float,
                    now: Callable[[], float] = time.time) -> etree._Element:
    """A fresh ``wsse:Security`` header (new nonce each call: cameras reject replays)."""
    nonce = os.urandom(16)
    created = format_created(now() + clock_offset)
    security = etree.Element(f"{{{WSSE}}}Security", nsmap={"wsse": WSSE, "wsu": WSU})
    token = etree.SubElement(security, f"{{{WSSE}}}UsernameToken")
    etree.SubElement(token, f"{{{WSSE}}}Username").text = username
    digest = etree.SubElement(token, f"{{{WSSE}}}Password", Type=PASSWORD_DIGEST)
    digest.text = password_digest(nonce, created, password)
    encoded = etree.SubElement(token, f"{{{WSSE}}}Nonce", EncodingType=BASE64_BINARY)
    encoded.text = base64.b64encode(nonce).decode("ascii")
    etree.SubElement(token, f"{{{WSU}}}Created").text = created
    return security
