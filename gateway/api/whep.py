"""WHEP (RFC 9725): one POST with an SDP offer starts a view session, DELETE ends it."""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from camera_adapters import StreamUnavailable
from emergency.audit import AuditEvent
from emergency.permissions import Permission
from emergency.sign_ins import CLI
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.api.views import refusal_detail
from gateway.errors import ApiError
from gateway.identity.caller import identity
from gateway.identity.guards import requires
from gateway.identity.tokens import Identity
from gateway.media.ice import gateway_ice_servers
from gateway.media.sessions import ViewSession
from gateway.media.webrtc import MAX_OFFER_BYTES, OfferError, answer_offer, check_offer_text

router = APIRouter(tags=["whep"])

SDP = "application/sdp"
CLI_NEVER_VIDEO = (
    "tokens from 'sightline token' are for automation and never open video; "
    "sign in with your password and authenticator code"
)


async def _read_offer(request: Request) -> str:
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != SDP:
        raise ApiError(415, "unsupported_media_type", f"send the offer as '{SDP}'")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_OFFER_BYTES:
            raise ApiError(413, "too_large", f"the SDP offer is larger than {MAX_OFFER_BYTES} bytes")
    try:
        return check_offer_text(bytes(body))
    except OfferError as exc:
        raise ApiError(400, "bad_sdp", str(exc)) from None


@router.post(
    "/whep/{camera_id}",
    status_code=201,
    dependencies=[Depends(requires(Permission.WATCH_LIVE, detail="role_not_permitted"))],
)
async def start_view(
    camera_id: str,
    request: Request,
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    ident: Annotated[Identity, Depends(identity)],
    stream: Literal["main", "sub"] = Query(default="main"),
) -> Response:
    if ident.method == CLI:
        gw.metrics.whep_requests.labels("denied").inc()
        gw.audit.append(
            AuditEvent.PERMISSION_DENIED,
            actor=who,
            object=f"camera:{camera_id}",
            outcome="denied",
            source=source,
            reason="a token from 'sightline token' asked for video",
            details={"sign_in": ident.sign_in},
        )
        raise ApiError(403, "forbidden", CLI_NEVER_VIDEO)
    decision = gw.emergencies.decide_view(who, camera_id, source=source)
    if not decision.allowed or decision.grant is None:
        gw.metrics.whep_requests.labels("denied").inc()
        raise ApiError(403, "forbidden", refusal_detail(gw.emergencies, who, decision.reason))
    if stream not in gw.media.streams(camera_id):
        raise ApiError(404, "not_found", f"camera '{camera_id}' has no {stream} stream; ask for stream=main")
    offer = await _read_offer(request)
    try:
        track = gw.media.open_track(camera_id, stream)
    except StreamUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    profile = await gw.media.profile_level_id(camera_id, stream)
    try:
        pc, answer = await answer_offer(offer, track, profile, gateway_ice_servers(gw.config.ice_servers))
    except OfferError as exc:
        track.stop()
        gw.metrics.whep_requests.labels("bad_offer").inc()
        raise ApiError(400, "bad_sdp", str(exc)) from None

    session = ViewSession(
        id=secrets.token_urlsafe(12),
        actor=who,
        camera_id=camera_id,
        stream=stream,
        grant_id=decision.grant.id,
        source=source,
        started=gw.clock.now(),
        pc=pc,
        track=track,
        sign_in=ident.sign_in or None,
        web_session=ident.web_session,
    )
    try:
        gw.sessions.add(session, reason=decision.reason)  # audits view.started
    except BaseException:
        track.stop()
        await pc.close()
        raise
    if not gw.emergencies.grant_live(decision.grant.id):
        # The grant ended while we negotiated; its revocation may have run before we registered.
        await gw.sessions.close(session.id, "grant ended during negotiation")
        raise ApiError(403, "forbidden", "access ended while the session was starting")

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            await gw.sessions.close(session.id, f"peer connection {pc.connectionState}")

    gw.metrics.whep_requests.labels("started").inc()
    gw.metrics.view_sessions.set(len(gw.sessions))
    location = f"/whep/{camera_id}/sessions/{session.id}"
    return Response(answer, status_code=201, media_type=SDP, headers={"Location": location})


@router.delete(
    "/whep/{camera_id}/sessions/{session_id}", status_code=204, dependencies=[Depends(requires(Permission.WATCH_LIVE))]
)
async def stop_view(camera_id: str, session_id: str, gw: GatewayDep, who: ActorDep) -> Response:
    session = gw.sessions.get(session_id)
    if session is None or session.camera_id != camera_id or session.actor.id != who.id:
        raise ApiError(404, "not_found", "no such view session (it may have ended already)")
    await gw.sessions.close(session_id, "viewer ended the session", actor=who)
    gw.metrics.view_sessions.set(len(gw.sessions))
    return Response(status_code=204)
