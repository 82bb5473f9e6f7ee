"""Mutual-aid guest passes over HTTP (the rules are emergency/guest_passes.py).

- ``POST /api/v1/emergencies/{id}/guest-passes``: an administrator of the building or a
  dispatcher gets a link and a PIN, shown once (``send_to`` also texts the link through
  the outbox; the PIN is read out over the radio).
- ``GET /guest/{secret}`` and ``POST /guest/{secret}``: the responder's page, a plain form
  (no script needed); success signs them in with a cookie session and sends them to /view.
- ``POST /api/v1/guest-passes/redeem``: the same for an app, answered with a bearer token
  of at most 15 minutes.

Both redemption routes are limited per source address with the sign-in limiter
(gateway/identity/signin.py), on top of the pass's own limit of wrong PINs.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from emergency.audit import AuditEvent
from emergency.errors import Invalid
from emergency.guest_passes import PASS_MINUTES, GuestPass, IssuedPass, PassRefused, masked_phone
from emergency.permissions import Permission
from emergency.sign_ins import GUEST_PASS
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.api.pages import _render
from gateway.errors import ApiError
from gateway.identity.caller import gateway
from gateway.identity.failures import audit_bad_credential
from gateway.identity.guards import public, require_in_building, requires
from gateway.identity.guests import GUEST_AMR, guest_account
from gateway.identity.proxies import client_address
from gateway.identity.signin import open_web_session, sign_in_state

router = APIRouter(tags=["guest passes"])

TOKEN_TTL = PASS_MINUTES * 60
MAX_FORM = 4096


def pass_view(p: GuestPass) -> dict[str, Any]:
    """A pass as issuers see it later: never the link or the PIN."""
    return {
        "id": p.id,
        "emergency": p.emergency_id,
        "building": p.building,
        "state": str(p.state),
        "created_by": p.created_by,
        "created_at": p.created_at.isoformat(),
        "expires_at": p.expires_at.isoformat(),
        "wrong_pins": p.wrong_pins,
        "redeemed_at": p.redeemed_at.isoformat() if p.redeemed_at else None,
        "guest": None
        if p.guest_name is None
        else {"name": p.guest_name, "badge": p.guest_badge, "agency": p.guest_agency, "shown_as": p.label},
        "ended_at": p.ended_at.isoformat() if p.ended_at else None,
        "end_reason": p.end_reason,
    }


class IssueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    send_to: str | None = Field(
        default=None, max_length=32, description="a phone number to text the link to (never the PIN)"
    )


class RedeemBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link: str = Field(min_length=1, max_length=300, description="the guest link, or its last part")
    pin: str = Field(min_length=1, max_length=16)
    name: str = Field(min_length=1, max_length=80)
    badge: str = Field(min_length=1, max_length=80)
    agency: str = Field(min_length=1, max_length=80)


def _issued_view(issued: IssuedPass, send_to: str | None) -> dict[str, Any]:
    p = issued.guest_pass
    return {
        **pass_view(p),
        "link": issued.link,
        "pin": issued.pin,
        "sent_to": masked_phone(send_to) if send_to else None,
        "instructions": f"Read the PIN out over the radio; the link works once, within {PASS_MINUTES} minutes.",
    }


@router.post(
    "/api/v1/emergencies/{emergency_id}/guest-passes",
    status_code=201,
    dependencies=[Depends(requires(Permission.ISSUE_GUEST_PASS))],
)
def create_pass(
    emergency_id: str,
    response: Response,
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    body: Annotated[IssueBody | None, Body()] = None,
) -> dict[str, Any]:
    """A guest pass for a mutual-aid responder: the link and PIN are shown this once."""
    send_to = body.send_to if body else None
    issued = gw.guest_passes.issue(who, emergency_id, send_to=send_to, source=source)
    response.headers["Cache-Control"] = "no-store"
    return _issued_view(issued, send_to)


@router.get(
    "/api/v1/emergencies/{emergency_id}/guest-passes", dependencies=[Depends(requires(Permission.ISSUE_GUEST_PASS))]
)
def list_passes(emergency_id: str, request: Request, gw: GatewayDep, who: ActorDep) -> list[dict[str, Any]]:
    e = gw.emergencies.get(emergency_id)
    require_in_building(request, who, Permission.ISSUE_GUEST_PASS, e.building)
    return [pass_view(p) for p in gw.guest_passes.of_emergency(emergency_id)]


@router.post("/api/v1/guest-passes/{pass_id}/end", dependencies=[Depends(requires(Permission.ISSUE_GUEST_PASS))])
def end_pass(pass_id: str, gw: GatewayDep, who: ActorDep, source: SourceDep) -> dict[str, Any]:
    """Take a pass back (a leaked link, the wrong person): the guest's video stops."""
    return pass_view(gw.guest_passes.end(who, pass_id, source=source))


def _redeem(request: Request, secret: str, pin: str, guest: dict[str, str]) -> GuestPass:
    """Per-source limit, then the pass's own rules; every refusal audited and counted."""
    gw = gateway(request)
    state = sign_in_state(request)
    source = client_address(request)
    wait = state.per_address.retry_after(source)
    if wait:
        audit_bad_credential(request, kind="guest pass", reason="too many failed attempts from this address")
        raise ApiError(
            429,
            "too_many_requests",
            f"too many failed attempts from this address; wait {wait} seconds and try again",
            {"Retry-After": str(wait)},
        )
    try:
        return gw.guest_passes.redeem(secret, pin, source=source, **guest)
    except PassRefused as refused:
        gw.metrics.auth_failures.inc()
        state.per_address.record(source)
        raise ApiError(refused.status, refused.reason, str(refused)) from None


@router.post(
    "/api/v1/guest-passes/redeem",
    dependencies=[Depends(public("a mutual-aid responder's guest pass: the link and the PIN are the credentials"))],
)
def redeem_for_token(body: RedeemBody, request: Request, response: Response, gw: GatewayDep) -> dict[str, Any]:
    """A bearer token for the guest (at most 15 minutes), for an app rather than the pages."""
    secret = body.link.rstrip("/").rsplit("/", 1)[-1]
    p = _redeem(request, secret, body.pin, {"name": body.name, "badge": body.badge, "agency": body.agency})
    token, token_id = gw.tokens.issue(p.account_id, ttl=TOKEN_TTL, amr=GUEST_AMR, method=GUEST_PASS)
    gw.audit.append(
        AuditEvent.AUTH_TOKEN_ISSUED,
        actor_id=p.account_id,
        object=f"account:{p.account_id}",
        source=client_address(request),
        reason="guest pass used",
        details={"amr": list(GUEST_AMR), "token": token_id, "ttl": TOKEN_TTL, "emergency": p.emergency_id},
    )
    response.headers["Cache-Control"] = "no-store"
    return {
        "token": token,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL,
        "account": p.account_id,
        "shown_as": p.label,
        "emergency": p.emergency_id,
    }


# the responder's page


def _guest_page(
    request: Request, secret: str, *, error: str | None = None, form: dict[str, str] | None = None, status: int = 200
) -> Response:
    page = _render(
        request,
        "guest.html",
        {"title": "Mutual-aid access", "user": None, "secret": secret, "error": error, "form": form or {}},
        status=status,
    )
    return page


@router.get(
    "/guest/{secret}",
    include_in_schema=False,
    dependencies=[Depends(public("the guest pass form; the link alone shows nothing"))],
)
def guest_form(secret: str, request: Request) -> Response:
    return _guest_page(request, secret)


@router.post(
    "/guest/{secret}",
    include_in_schema=False,
    dependencies=[Depends(public("a mutual-aid responder's guest pass: the link and the PIN are the credentials"))],
)
async def guest_submit(secret: str, request: Request) -> Response:
    """The plain form's post: signed in and sent to the cameras, or the form again with why."""
    raw = (await request.body())[:MAX_FORM].decode("utf-8", "replace")
    return await run_in_threadpool(_submit, request, secret, raw)


def _submit(request: Request, secret: str, raw: str) -> Response:
    """The storage and sign-in work of ``guest_submit``, off the event loop like a plain route's."""
    fields = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
    form = {k: fields.get(k, "")[:80] for k in ("name", "badge", "agency")}
    pin = fields.get("pin", "")[:16]
    try:
        p = _redeem(request, secret, pin, form)
    except ApiError as exc:
        return _guest_page(request, secret, error=exc.detail, form=form, status=exc.status)
    except Invalid as exc:  # a blank field: costs no try
        return _guest_page(request, secret, error=f"Fill in every field ({exc}).", form=form, status=400)
    redirect = RedirectResponse("/view", status_code=303)
    open_web_session(
        request,
        redirect,
        guest_account(p),
        GUEST_AMR,
        reason="signed in with a mutual-aid guest pass (link and PIN)",
        details={"pass": p.id, "emergency": p.emergency_id, "shown_as": p.label},
        method=GUEST_PASS,
    )
    return redirect
