"""Errors raised to callers of camera_adapters."""

from __future__ import annotations


class StreamUnavailable(Exception):
    """The requested camera or stream is not registered."""


class SourceError(Exception):
    """A camera session ended; the source decides whether to reconnect."""
