"""How to reach a camera: stream URLs, credentials, ONVIF address.

Kept apart from the district's view of a camera (building, zone, privacy) because who
may watch a camera and how to pull its video are different questions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit, urlunsplit


@dataclass(frozen=True)
class CameraConnection:
    camera_id: str
    main: str
    sub: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    onvif: str | None = None
    snapshot_uri: str | None = None

    def url(self, stream: str) -> str | None:
        """The stream URL with credentials inserted, for the ingest only; never log it."""
        base = self.main if stream == "main" else self.sub
        if base is None or not self.username:
            return base
        return with_credentials(base, self.username, self.password or "")


def with_credentials(url: str, username: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    userinfo = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(url without userinfo, username, password) — for URLs typed with credentials inline."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None, None
    user, colon, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=host))
    return clean, unquote(user) or None, unquote(password) if colon else None
