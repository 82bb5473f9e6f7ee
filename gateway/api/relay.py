"""Node-to-node camera relay: the node holding a camera's lease streams its access units to
the other nodes (gateway/media/camera_leases.py; wire format in camera_adapters/relay.py).

Not for users and not in the OpenAPI document: only a request signed with the nodes'
shared relay key is served (401 otherwise), and only while this node ingests the camera
itself (409 otherwise, so two nodes never relay from each other). Each relay connection
is audited once when it starts and once when it ends; no video is recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

from aiortc.mediastreams import MediaStreamError
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from camera_adapters.errors import StreamUnavailable
from camera_adapters.relay import HEARTBEAT, MAGIC, MEDIA_TYPE, encode_unit
from emergency.audit import AuditEvent
from gateway.api.deps import GatewayDep
from gateway.errors import ApiError
from gateway.identity.guards import node_key

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
HEARTBEAT_SECONDS = 1.0


@node_key
async def calling_node(request: Request, gw: GatewayDep) -> str:
    """The node that signed the request with the nodes' shared relay key."""
    leases = gw.leases
    if leases is None:
        raise ApiError(404, "not_found", "this node relays no cameras (no [gateway] redis)")
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) and raw else request.url.path
    node = await asyncio.to_thread(leases.authenticate, request.method, path, request.headers)
    if node is None:
        raise ApiError(401, "unauthorized", "node-to-node requests need a valid, current, unused relay signature")
    return node


@router.get("/internal/v1/relay/{camera_id}/{stream}")
async def relay(
    camera_id: str, stream: str, node: Annotated[str, Depends(calling_node)], gw: GatewayDep
) -> StreamingResponse:
    leases = gw.leases
    assert leases is not None  # calling_node answered 404 otherwise
    if gw.relay_closing:
        raise ApiError(503, "unavailable", "this node is shutting down")
    if not leases.owns(camera_id, stream):
        raise ApiError(409, "not_owner", f"this node does not ingest camera {camera_id!r} stream {stream!r}")
    try:
        track = gw.media.open_track(camera_id, stream)
    except StreamUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    gw.relay_tracks.add(track)
    leases.relay_served(camera_id, stream, +1)
    obj = f"camera:{camera_id}"
    gw.audit.append(
        AuditEvent.RELAY_STARTED,
        actor_id=f"node:{node}",
        object=obj,
        details={"stream": stream, "to_node": node, "from_node": gw.config.node},
    )
    log.info("relay of %s/%s to node %s started", camera_id, stream, node)

    async def body() -> AsyncIterator[bytes]:
        started, units, sent = time.monotonic(), 0, 0
        why = "the receiving node disconnected"
        try:
            yield MAGIC
            while True:
                try:
                    packet = await asyncio.wait_for(track.recv(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    if not leases.owns(camera_id, stream):
                        # gave the camera up (it sent nothing): the other node takes it over
                        why = "this node no longer ingests the camera"
                        return
                    yield HEARTBEAT  # no video right now (camera reconnecting); still here
                    continue
                except MediaStreamError:
                    why = "this node stopped relaying (shutdown or the camera's ingest ended)"
                    return
                data = bytes(packet)
                units += 1
                sent += len(data)
                yield encode_unit(packet.pts or 0, bool(packet.is_keyframe), data)  # PacketTrack stamps every one
        finally:
            track.stop()
            gw.relay_tracks.discard(track)
            leases.relay_served(camera_id, stream, -1)
            gw.audit.append(
                AuditEvent.RELAY_ENDED,
                actor_id=f"node:{node}",
                object=obj,
                reason=why,
                details={
                    "stream": stream,
                    "to_node": node,
                    "from_node": gw.config.node,
                    "seconds": round(time.monotonic() - started, 1),
                    "units": units,
                    "bytes": sent,
                },
            )
            log.info("relay of %s/%s to node %s ended: %s", camera_id, stream, node, why)

    return StreamingResponse(
        body(), media_type=MEDIA_TYPE, headers={"X-Relay-Peer": gw.config.node, "Cache-Control": "no-store"}
    )
