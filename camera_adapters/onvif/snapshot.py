"""fetch_snapshot: one JPEG from a camera's snapshot URI."""

from __future__ import annotations

import httpx

from ..urls import redact
from .model import OnvifAuthError, OnvifError, OnvifUnreachable
from .session import AUTH_HINT


def _challenges(response: httpx.Response) -> set[str]:
    return {h.split(" ", 1)[0].lower() for h in response.headers.get_list("www-authenticate")}


async def fetch_snapshot(uri: str, username: str, password: str, *, timeout: float = 5.0) -> bytes:
    """GET ``uri`` answering a Digest (or Basic) challenge; credentials in ``uri`` are
    ignored (we pass our own) so a stale embedded password cannot shadow the configured one."""
    where = redact(uri)
    try:
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
            response = await client.get(where, auth=httpx.DigestAuth(username, password))
            if (
                response.status_code == 401
                and "basic" in _challenges(response)
                and "digest" not in _challenges(response)
            ):
                # Quirk (Basic-only snapshots): older firmwares. The password goes out
                # as Basic only after the camera asked for exactly that.
                response = await client.get(where, auth=httpx.BasicAuth(username, password))
    except httpx.TimeoutException:
        raise OnvifUnreachable(f"snapshot from {where} timed out after {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise OnvifUnreachable(f"cannot fetch snapshot from {where} ({type(exc).__name__})") from None
    if response.status_code == 401:
        raise OnvifAuthError(f"snapshot at {where} refused the credentials for user {username!r}; " + AUTH_HINT)
    if response.status_code != 200:
        raise OnvifError(f"snapshot at {where} answered HTTP {response.status_code}")
    if not response.content.startswith(b"\xff\xd8"):
        raise OnvifError(
            f"snapshot at {where} is not a JPEG ({response.headers.get('content-type', 'no content type')})"
        )
    return response.content
