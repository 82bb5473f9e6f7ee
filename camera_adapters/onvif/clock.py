"""Camera clock from GetSystemDateAndTime, tolerant of what firmwares actually send.

Seen in the field: no UTCDateTime (only LocalDateTime plus a POSIX TZ string),
impossible dates (month 0, hour 24) on cameras whose RTC battery died. An unreadable
clock gives None and the probe carries on with no correction.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from .xmlread import Element, child, number, text

_POSIX_TZ = re.compile(r"^(?:<[^>]+>|[A-Za-z]{3,})([+-]?)(\d{1,2})(?::(\d{2}))?")


def _datetime(el: Element | None) -> datetime | None:
    parts = [number(el, "Date", "Year"), number(el, "Date", "Month"), number(el, "Date", "Day"),
             number(el, "Time", "Hour"), number(el, "Time", "Minute"), number(el, "Time", "Second")]
    if el is None or any(p is None for p in parts):
        return None
    try:
        return datetime(*(int(p) for p in parts if p is not None), tzinfo=timezone.utc)
    except ValueError:
        return None


def _posix_offset(tz: str | None) -> timedelta | None:
    """Hours west of UTC in a POSIX TZ string like ``EST5EDT`` or ``CST-8``."""
    match = _POSIX_TZ.match(tz or "")
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))


def camera_utc(response: Element) -> datetime | None:
    """The camera's idea of UTC now, or None if it cannot be read."""
    info = child(response, "SystemDateAndTime")
    utc = _datetime(child(info, "UTCDateTime"))
    if utc is not None:
        return utc
    local_time = _datetime(child(info, "LocalDateTime"))
    west = _posix_offset(text(info, "TimeZone", "TZ"))
    if local_time is None or west is None:
        return None
    dst = timedelta(hours=1) if text(info, "DaylightSavings") == "true" else timedelta(0)
    return local_time + west - dst
