"""HTTP authentication the way cameras want it: answer the challenge, never pre-send.

Snapshot endpoints and some SOAP endpoints sit behind HTTP Digest (most) or Basic
(older firmwares). We only send credentials after a 401 says which scheme, so a
password never goes out as Basic to a server that would have accepted Digest.
"""

from __future__ import annotations

import base64
from collections.abc import Generator

import httpx


class CameraAuth(httpx.Auth):
    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._digest = httpx.DigestAuth(username, password)

    def __repr__(self) -> str:
        return f"CameraAuth(username={self._username!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        if response.status_code != 401:
            return
        schemes = [h.split(" ", 1)[0].lower() for h in response.headers.get_list("www-authenticate")]
        if "digest" in schemes:
            flow = self._digest.auth_flow(request)
            next(flow)
            retry = flow.send(response)
            answer = yield retry
            try:
                flow.send(answer)
            except StopIteration:
                pass
        elif "basic" in schemes:
            raw = f"{self._username}:{self._password}".encode("utf-8")
            request.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
            yield request
