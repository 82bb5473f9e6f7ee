"""URL helpers: parsing camera URLs and keeping credentials out of logs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

SCHEMES = ("rtsp", "rtsps", "synthetic")


def redact(url: str) -> str:
    """Return ``url`` without userinfo, safe to log (camera URLs often carry passwords)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. an FFmpeg error quoting the URL) with the URL's credentials removed."""
    text = text.replace(url, redact(url))
    userinfo = urlsplit(url).netloc.rpartition("@")[0]
    return text.replace(userinfo, "***") if userinfo else text


def scheme_of(url: str) -> str:
    """Lower-case scheme; raises ValueError for schemes no source understands."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unsupported camera URL scheme {scheme!r} in {redact(url)}")
    return scheme


@dataclass(frozen=True)
class SyntheticSpec:
    """What a ``synthetic://<label>?w=&h=&fps=`` URL asks for."""

    label: str
    width: int = 640
    height: int = 360
    fps: int = 15


def parse_synthetic(url: str) -> SyntheticSpec:
    """Parse a demo-camera URL; sizes are rounded down to even numbers for 4:2:0."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)

    def num(key: str, default: int, lo: int, hi: int) -> int:
        value = int(query.get(key, [default])[0])
        if not lo <= value <= hi:
            raise ValueError(f"synthetic {key}={value} outside {lo}..{hi}")
        return value

    label = unquote(parts.netloc + parts.path) or "synthetic"
    width = num("w", 640, 64, 3840) & ~1
    height = num("h", 360, 64, 2160) & ~1
    return SyntheticSpec(label, width, height, num("fps", 15, 1, 60))
