"""Camera clock from GetSystemDateAndTime, tolerant of what firmwares actually send.

An unreadable clock gives None and the probe carries on with no correction.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .fields import field, integer, text

_POSIX_TZ = re.compile(r"^(?:<[^>]+>|[A-Za-z]{3,})([+-]?)(\d{1,2})(?::(\d{2}))?")


def _datetime(value: object) -> datetime | None:
    parts = [
        integer(value, "Date", "Year"),
        integer(value, "Date", "Month"),
        integer(value, "Date", "Day"),
        integer(value, "Time", "Hour"),
        integer(value, "Time", "Minute"),
        integer(value, "Time", "Second"),
    ]
    year, month, day, hour, minute, second = parts
    if year is None or month is None or day is None or hour is None or minute is None or second is None:
        return None
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        # Quirk (impossible dates): cameras whose RTC battery died report month 0,
        # day 0 or hour 24. No correction is better than a wrong one.
        return None


def _posix_offset(tz: str | None) -> timedelta | None:
    """Hours west of UTC in a POSIX TZ string like ``EST5EDT`` or ``CST-8``."""
    match = _POSIX_TZ.match(tz or "")
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3) or 0))


def camera_utc(system_date_and_time: object) -> datetime | None:
    """The camera's idea of UTC now (from a ``SystemDateAndTime``), or None."""
    utc = _datetime(field(system_date_and_time, "UTCDateTime"))
    if utc is not None:
        return utc
    # Quirk (local time only): some firmwares leave out UTCDateTime and send
    # LocalDateTime plus a POSIX TZ string; DaylightSavings says whether DST is on now.
    local_time = _datetime(field(system_date_and_time, "LocalDateTime"))
    west = _posix_offset(text(system_date_and_time, "TimeZone", "TZ"))
    if local_time is None or west is None:
        return None
    dst = field(system_date_and_time, "DaylightSavings") in (True, "true")
    return local_time + west - (timedelta(hours=1) if dst else timedelta(0))
