"""onvif-zeep-async, imported and constructed without its process-wide side effects.

The library is what Home Assistant's ONVIF integration uses: it ships the ONVIF WSDLs,
builds every request with zeep and stamps WS-UsernameToken digests (``Created`` in whole
Zulu seconds, shifted by ``dt_diff`` for cameras whose clock is off). Two things it does
to the whole process are undone here, because the gateway owns both:

* importing ``onvif.client`` calls ``logging.basicConfig(level=INFO)``;
* constructing ``ONVIFCamera`` deletes ``http_proxy``/``https_proxy`` from the
  environment (its aiohttp sessions ignore proxies anyway).

(It also makes zeep return ``anySimpleType`` values as raw text; only this package
uses zeep.)

Its transport logs whole SOAP envelopes (UsernameToken digests, stream URIs that may
carry camera passwords) at DEBUG, and zeep logs some 400 KB of schema loading per probe
at DEBUG; both loggers are kept at INFO.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

_root = logging.getLogger()
_kept_handlers, _kept_level = list(_root.handlers), _root.level
try:
    from onvif import ONVIFCamera
    from onvif import ONVIFError as LibraryError
    from onvif.definition import SERVICES
    from onvif.util import normalize_url, strip_user_pass_url
finally:
    _root.handlers[:] = _kept_handlers
    _root.setLevel(_kept_level)
for _noisy in ("onvif.zeep_aiohttp", "zeep"):
    logging.getLogger(_noisy).setLevel(logging.INFO)

MEDIA_NS: str = SERVICES["media"]["ns"]
_PROXY_VARIABLES = ("http_proxy", "https_proxy")

__all__ = ["MEDIA_NS", "LibraryError", "new_camera", "same_door", "without_credentials"]


def new_camera(host: str, port: int, username: str, password: str, *, clock_offset: float) -> Any:
    """An ``ONVIFCamera`` whose WS-Security tokens are stamped ``clock_offset`` s ahead.

    ``nat_override``: cameras behind NAT (or with 0.0.0.0 configured) advertise service
    addresses we cannot reach; every advertised XAddr is re-pointed at ``host:port``.
    """
    kept = {name: os.environ[name] for name in _PROXY_VARIABLES if name in os.environ}
    try:
        camera = ONVIFCamera(host, port, username, password, no_cache=True, nat_override=True)
    finally:
        os.environ.update(kept)
    camera.dt_diff = timedelta(seconds=clock_offset) if clock_offset else None
    return camera


def same_door(camera: Any, url: str) -> str | None:
    """``url`` from the camera, re-pointed at the address we reached it on.

    Quirk (duplicated port): some firmwares advertise ``http://host:8106:8106/...``;
    ``normalize_url`` drops the repeat.
    """
    rewritten = camera.rewrite_url(normalize_url(url))
    return rewritten if isinstance(rewritten, str) else None


def without_credentials(uri: str) -> str:
    """``uri`` without ``user:pass@`` and without credential query parameters.

    Quirk (credentials in URIs): many firmwares put the camera password into the stream
    or snapshot URI they report, some as ``?user=..&password=..``. The gateway stores
    the credentials sealed, never in a URI.
    """
    try:
        return str(strip_user_pass_url(normalize_url(uri) or uri))
    except ValueError:
        from ..urls import redact

        return redact(uri)
