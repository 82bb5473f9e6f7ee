"""The OpenID Connect sign-in routes: ``GET /signin/oidc/{agency}`` sends the browser to
its agency's provider, ``GET /signin/oidc/callback`` brings it back signed in.

The protocol checks are in gateway/identity/oidc.py, provisioning in
gateway/identity/people.py; this module speaks HTTP, audits refusals and limits them per
source (the same per-address failure limit as password sign-in: 20 a minute).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from emergency.audit import AuditEvent
from emergency.sign_ins import OIDC
from gateway.api.pages import render_page, safe_next
from gateway.identity.caller import client_address, gateway
from gateway.identity.failures import failure_summary
from gateway.identity.guards import public
from gateway.identity.oidc import CALLBACK_PATH, FLOW_COOKIE, FLOW_PATH, FLOW_SECONDS, OidcRefused
from gateway.identity.signin import SignInUnavailable, open_web_session, secure_cookies, sign_in_state

router = APIRouter(include_in_schema=False)

AMR_OIDC = ("oidc",)
AMR_OIDC_MFA = ("oidc", "mfa")
RECEIPT_ORIGIN = "oidc-state"


def _clear_flow(response: Response, request: Request) -> None:
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax", secure=secure_cookies(request))


def _refused_page(request: Request, exc: OidcRefused, headers: dict[str, str] | None = None) -> Response:
    who = exc.provider.owner_name if exc.provider else None
    page = render_page(
        request,
        "oidc_refused.html",
        {"title": "Sign-in refused", "user": None, "tell": exc.tell, "who": who},
        status=exc.status,
    )
    page.headers.update(headers or {})
    _clear_flow(page, request)
    return page


def _audit_refusal(request: Request, exc: OidcRefused, owner: str | None) -> None:
    gw = gateway(request)
    gw.metrics.auth_failures.inc()
    gw.audit.append(
        AuditEvent.OIDC_REFUSED,
        actor_id="unknown",
        object=f"provider:{owner}" if owner else "provider:unknown",
        outcome="denied",
        source=client_address(request),
        reason=exc.why,
        details={"agency": owner, "why": exc.why, "method": "oidc"},
    )


# The callback first: "/signin/oidc/callback" would otherwise match "/signin/oidc/{agency_id}".
@router.get(CALLBACK_PATH, dependencies=[Depends(public("the agency's provider sends the browser back here"))])
def callback(
    request: Request,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    """Checks the answer, provisions the person and opens their session."""
    gw = gateway(request)
    limits = sign_in_state(request)
    source = client_address(request)
    wait = limits.per_address.retry_after(source)  # SignInUnavailable: the page handler says so
    if wait:
        refusal = OidcRefused(
            "too many refused sign-ins from this address; refused without checking",
            f"Too many sign-ins from this network were refused. Wait {wait} seconds and try again.",
            status=429,
        )
        gw.metrics.auth_failures.inc()
        if failure_summary(request).first(source, kind="refused sign-in", reason=f"oidc: {refusal.why}"):
            _audit_refusal(request, refusal, None)
        return _refused_page(request, refusal, {"Retry-After": str(wait)})

    owner: str | None = None
    try:
        flow = gw.oidc.open_flow(request.cookies.get(FLOW_COOKIE))
        owner = flow.owner
        if error:
            provider = gw.oidc.providers[owner]
            raise OidcRefused(
                f"the provider answered {error[:64]!r}" + (f": {error_description[:200]}" if error_description else ""),
                f"{provider.owner_name}'s sign-in did not let you in ({error[:64]}). "
                "Try again, or ask your agency's IT department.",
                status=401,
                provider=provider,
            )
        signed = gw.oidc.finish(flow, state, code, lambda s: gw.receipts.first_time(RECEIPT_ORIGIN, s))
        person = gw.people.provision(signed.provider, signed.claims, source)
    except OidcRefused as exc:
        _audit_refusal(request, exc, owner)
        limits.per_address.record(source)
        return _refused_page(request, exc)

    provider, claims = signed.provider, signed.claims
    mfa = provider.proves_mfa(claims.get("amr"), claims.get("acr"))
    target = safe_next(signed.next)
    page = render_page(
        request,
        "oidc_done.html",
        {"title": "Signed in", "user": None, "next": target, "mfa": mfa, "agency": provider.owner_name},
    )
    details: dict[str, Any] = {
        "method": "oidc",
        "issuer": provider.issuer,
        "subject": person.subject,
        "badge": person.badge,
        "provider_amr": claims.get("amr"),
        "provider_acr": claims.get("acr"),
    }
    try:
        open_web_session(
            request,
            page,
            person.account(),
            AMR_OIDC_MFA if mfa else AMR_OIDC,
            reason=f"signed in through {provider.owner_name}'s provider"
            + ("" if mfa else " without a proven second factor (no video)"),
            details=details,
            method=OIDC,
        )
    except SignInUnavailable:  # the page handler answers 503 in words; the attempt is on record
        why = "the shared sign-in store (Redis) cannot be reached; answered 503"
        _audit_refusal(request, OidcRefused(why, why, status=503, provider=provider), provider.owner)
        raise
    _clear_flow(page, request)
    return page


@router.get(FLOW_PATH + "/{agency_id}", dependencies=[Depends(public("starts a sign-in at the agency's provider"))])
def start(request: Request, agency_id: str, next: str | None = None) -> Response:
    """Sends the browser to the provider (``agency_id``: an agency's, or the district's id),
    with this sign-in's state sealed in a cookie."""
    gw = gateway(request)
    owner = agency_id
    if owner not in gw.oidc.providers:
        return _refused_page(
            request,
            OidcRefused(
                "no such provider",
                "This district has no sign-in service by that name. Go back to the sign-in page.",
                status=404,
            ),
        )
    try:
        url, sealed, _ = gw.oidc.start(owner, safe_next(next))
    except OidcRefused as exc:
        _audit_refusal(request, exc, owner)
        return _refused_page(request, exc)
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        sealed,
        max_age=FLOW_SECONDS,
        path=FLOW_PATH,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a cross-site navigation
        secure=secure_cookies(request),
    )
    response.headers["Cache-Control"] = "no-store"
    return response
