"""WHEP (draft-ietf-wish-whep; RFC 9725 is its ingest twin, WHIP): a POST with an SDP
offer starts a view session, PATCH trickles the viewer's ICE candidates, DELETE ends it.

What the draft asks of a WHEP endpoint and session, and how this gateway answers:

* 201 with the answer, ``Location`` (the session), ``ETag`` (the ICE session,
  gateway/media/trickle.py) and one ``Link: <url>; rel="ice-server"`` per STUN/TURN URL
  the site lists, TURN with this viewer's short-lived credentials (gateway/media/ice.py);
* PATCH ``application/trickle-ice-sdpfrag`` with ``If-Match``: 204 when the candidates
  join the ICE agent, 412 for a stale entity-tag, 428 without one; an ICE restart
  (``If-Match: *`` or new credentials) is 422, as the draft says for a session that
  trickles but cannot restart (aiortc cannot): the player POSTs a new offer instead;
* OPTIONS on both (CORS preflights need no credentials: gateway/whep_cors.py) with
  ``Accept-Post: application/sdp``; any other method is 405 with ``Allow`` listing them all;
* 503 with ``Retry-After`` while the camera is starting (first connection, no picture
  yet), or when this node already serves ``[gateway] max_view_sessions`` viewers; refusals
  are audited. A camera that is down is not refused: the session gets its video when the
  camera returns, without the officer doing anything.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from camera_adapters import StreamUnavailable
from emergency.audit import AuditEvent
from emergency.model import Actor, Decision
from emergency.permissions import Permission
from emergency.sign_ins import CLI
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.api.views import refusal_detail
from gateway.errors import ApiError
from gateway.identity.caller import identity
from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.guards import public, requires
from gateway.identity.tokens import Identity
from gateway.media.adapt import adapt
from gateway.media.ice import gateway_ice_servers, viewer_ice_servers
from gateway.media.sessions import ViewSession
from gateway.media.trickle import MAX_FRAGMENT_BYTES, TrickleError, add_candidates, ice_etag, parse_fragment
from gateway.media.webrtc import MAX_OFFER_BYTES, OfferError, answer_offer, check_offer_text
from gateway.runtime import Gateway

log = logging.getLogger(__name__)
router = APIRouter(tags=["whep"])

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
ENDPOINT = "/whep/{camera_id}"
RESOURCE = "/whep/{camera_id}/sessions/{session_id}"
ENDPOINT_METHODS = "OPTIONS, POST"
RESOURCE_METHODS = "OPTIONS, GET, PATCH, DELETE"  # GET: its timing (gateway/api/sessions.py)
RETRY_STARTING_SECONDS = 2  # a camera's first keyframe is usually a GOP (1-2 s) away
RETRY_FULL_SECONDS = 10
CLI_NEVER_VIDEO = (
    "tokens from 'sightline token' are for automation and never open video; "
    "sign in with your password and authenticator code"
)


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_body(request: Request, limit: int, what: str) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "too_large", f"the {what} is larger than {limit} bytes")
    return bytes(body)


async def _read_offer(request: Request) -> str:
    if _content_type(request) != SDP:
        raise ApiError(415, "unsupported_media_type", f"send the offer as '{SDP}'")
    body = await _read_body(request, MAX_OFFER_BYTES, "SDP offer")
    try:
        return check_offer_text(body)
    except OfferError as exc:
        raise ApiError(400, "bad_sdp", str(exc)) from None


def _refuse_busy(
    gw: Gateway, who: Actor, source: str | None, camera_id: str, reason: str, detail: str, retry: int
) -> ApiError:
    """503 with Retry-After: the viewer may try again (the draft's answer to load and to a
    stream that is not there yet); audited like every refusal of video."""
    gw.metrics.whep_requests.labels("busy").inc()
    gw.audit.append(
        AuditEvent.VIEW_DENIED,
        actor=who,
        object=f"camera:{camera_id}",
        outcome="denied",
        source=source,
        reason=reason,
        details={"retry_after_s": retry},
    )
    return ApiError(503, reason, detail, headers={"Retry-After": str(retry)})


def _link_headers(gw: Gateway, user: str) -> list[str]:
    """``Link: <url>; rel="ice-server"`` values for this viewer (the WHEP draft takes them from RFC 9725, WHIP, section 4.4)."""
    expires = int(gw.clock.now().timestamp()) + gw.config.ice_credential_ttl
    try:
        servers = viewer_ice_servers(gw.config.ice_servers, CredentialBox.for_dir(gw.config.secrets_dir), user, expires)
    except CredentialError:
        log.warning("the TURN secret cannot be opened with this node's key; WHEP answers carry no ice-server links")
        return []
    links = []
    for server in servers:
        extra = ""
        if "username" in server:
            extra = (
                f'; username="{_quoted(server["username"])}"; credential="{_quoted(server["credential"])}"'
                '; credential-type="password"'
            )
        links += [f'<{url}>; rel="ice-server"{extra}' for url in server["urls"]]
    return links


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@router.options(
    ENDPOINT,
    status_code=204,
    dependencies=[
        Depends(public("WHEP discovery and CORS preflight: says only which methods and media type the endpoint takes"))
    ],
)
def endpoint_options(camera_id: str) -> Response:
    return Response(status_code=204, headers={"Allow": ENDPOINT_METHODS, "Accept-Post": SDP})


@router.options(
    RESOURCE,
    status_code=204,
    dependencies=[
        Depends(public("WHEP session discovery and CORS preflight: says only which methods the session takes"))
    ],
)
def resource_options(camera_id: str, session_id: str) -> Response:
    return Response(status_code=204, headers={"Allow": RESOURCE_METHODS, "Accept-Patch": SDPFRAG})


@router.api_route(
    ENDPOINT,
    methods=["GET", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    dependencies=[Depends(public("answers 405 with the methods a WHEP endpoint takes"))],
)
def endpoint_other(camera_id: str) -> Response:
    raise ApiError(
        405,
        "method_not_allowed",
        "a WHEP endpoint takes POST (an SDP offer) and OPTIONS",
        headers={"Allow": ENDPOINT_METHODS},
    )


@router.api_route(
    RESOURCE,
    methods=["PUT", "POST"],
    include_in_schema=False,
    dependencies=[Depends(public("answers 405 with the methods a WHEP session takes"))],
)
def resource_other(camera_id: str, session_id: str) -> Response:
    raise ApiError(
        405,
        "method_not_allowed",
        "a WHEP session takes PATCH, DELETE, GET and OPTIONS",
        headers={"Allow": RESOURCE_METHODS},
    )


@router.post(
    ENDPOINT,
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
    state = request.app.state  # offers being answered count too, so a burst cannot overshoot
    negotiating: int = getattr(state, "whep_negotiating", 0)
    if len(gw.sessions) + negotiating >= gw.config.max_view_sessions:
        raise _refuse_busy(
            gw,
            who,
            source,
            camera_id,
            "node_full",
            f"this node already serves its limit of {gw.config.max_view_sessions} video sessions; try again shortly",
            RETRY_FULL_SECONDS,
        )
    state.whep_negotiating = negotiating + 1
    try:
        return await _negotiate(camera_id, stream, offer, gw, who, source, ident, decision)
    finally:
        state.whep_negotiating -= 1


async def _negotiate(
    camera_id: str,
    stream: str,
    offer: str,
    gw: Gateway,
    who: Actor,
    source: str | None,
    ident: Identity,
    decision: Decision,
) -> Response:
    """Opens the camera, answers the offer and registers the session."""
    assert decision.grant is not None
    try:
        track = gw.media.open_track(camera_id, stream)
    except StreamUnavailable as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    profile = await gw.media.profile_level_id(camera_id, stream)
    stats = gw.media.stats(camera_id, stream)
    if stats["keyframe_age_s"] is None and stats["state"] == "connecting":
        # Still on its first connection and no picture yet: the player comes back. A camera
        # that is down (backoff, reconnecting) keeps the session: video arrives by itself the
        # moment it returns, or through another node (gateway/media/camera_leases.py).
        track.stop()
        raise _refuse_busy(
            gw,
            who,
            source,
            camera_id,
            "camera_starting",
            f"camera '{camera_id}' is starting and has not sent a picture yet; try again in a moment",
            RETRY_STARTING_SECONDS,
        )
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

    adapt(session, gw.media, gw.audit)  # main -> sub and back by what the viewer's link carries
    gw.metrics.whep_requests.labels("started").inc()
    gw.metrics.view_sessions.set(len(gw.sessions))
    location = f"/whep/{camera_id}/sessions/{session.id}"
    response = Response(
        answer,
        status_code=201,
        media_type=SDP,
        headers={"Location": location, "ETag": ice_etag(pc), "Cache-Control": "no-store"},
    )
    for link in _link_headers(gw, who.id):
        response.headers.append("Link", link)
    return response


def _own_session(gw: Gateway, who: Actor, camera_id: str, session_id: str) -> ViewSession:
    session = gw.sessions.get(session_id)
    if session is None or session.camera_id != camera_id or session.actor.id != who.id:
        raise ApiError(404, "not_found", "no such view session (it may have ended already)")
    return session


@router.patch(RESOURCE, status_code=204, dependencies=[Depends(requires(Permission.WATCH_LIVE))])
async def trickle(camera_id: str, session_id: str, request: Request, gw: GatewayDep, who: ActorDep) -> Response:
    """Trickle ICE: the viewer's late candidates (``If-Match``: the session's ETag)."""
    session = _own_session(gw, who, camera_id, session_id)
    if _content_type(request) != SDPFRAG:
        raise ApiError(415, "unsupported_media_type", f"send ICE candidates as '{SDPFRAG}'")
    current = ice_etag(session.pc)
    if_match = request.headers.get("if-match")
    if if_match is None:
        raise ApiError(428, "precondition_required", f"send If-Match with the session's ETag ({current})")
    tags = [t.strip() for t in if_match.split(",")]
    if "*" in tags:
        raise ApiError(
            422,
            "ice_restart_unsupported",
            "this gateway cannot restart ICE on a running session; end it (DELETE) and start a new one (POST)",
        )
    if current not in tags:
        raise ApiError(412, "precondition_failed", "the ICE session changed; its ETag is no longer " + if_match)
    body = await _read_body(request, MAX_FRAGMENT_BYTES, "SDP fragment")
    try:
        await add_candidates(session.pc, parse_fragment(body))
    except TrickleError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return Response(status_code=204, headers={"ETag": current})


@router.delete(RESOURCE, status_code=204, dependencies=[Depends(requires(Permission.WATCH_LIVE))])
async def stop_view(camera_id: str, session_id: str, gw: GatewayDep, who: ActorDep) -> Response:
    _own_session(gw, who, camera_id, session_id)
    await gw.sessions.close(session_id, "viewer ended the session", actor=who)
    gw.metrics.view_sessions.set(len(gw.sessions))
    return Response(status_code=204)
