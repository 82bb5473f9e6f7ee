"""Chooses the source implementation for a camera URL."""

from __future__ import annotations

from .rtsp import RtspSource
from .source import Source, SourceSink
from .synthetic import SyntheticSource
from .urls import parse_synthetic, scheme_of


def validate_url(url: str) -> None:
    """Raise ValueError now rather than when the first viewer arrives."""
    if scheme_of(url) == "synthetic":
        parse_synthetic(url)


def make_source(url: str, sink: SourceSink) -> Source:
    if scheme_of(url) == "synthetic":
        return SyntheticSource(url, sink)
    return RtspSource(url, sink)
