"""One SOAP 1.2 request/response over httpx, with faults and transport errors classified.

Every failure becomes an OnvifError whose text names the operation, the (credential-free)
address and a next step, because the person reading it is installing a camera.
"""

from __future__ import annotations

import httpx
from lxml import etree

from ..urls import redact
from .model import OnvifAuthError, OnvifError, OnvifUnreachable
from .namespaces import SOAP_ENV
from .xmlread import Element, child, children, local, parse, text

AUTH_HINT = ("check the username and password (ONVIF users are often separate from the "
             "camera's web users) and that the user has ONVIF access")


class SoapFault(Exception):
    """A SOAP fault from the camera; ``code``/``subcodes`` without their prefixes."""

    def __init__(self, operation: str, code: str, subcodes: tuple[str, ...], reason: str) -> None:
        self.operation, self.code, self.subcodes, self.reason = operation, code, subcodes, reason
        super().__init__(operation, code, subcodes, reason)

    def __str__(self) -> str:
        subs = "/".join(self.subcodes)
        return f"{self.operation} failed: {self.code}{'/' + subs if subs else ''}: {self.reason}"

    @property
    def is_auth(self) -> bool:
        """Cameras rarely use ter:NotAuthorized consistently, so reason text counts too."""
        words = " ".join(self.subcodes + (self.reason,)).lower()
        return any(w in words for w in ("notauthorized", "failedauthentication", "auth",
                                        "password", "credential", "unauthorized"))


def envelope(body: Element, header: Element | None = None) -> bytes:
    env = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"s": SOAP_ENV})
    if header is not None:
        etree.SubElement(env, f"{{{SOAP_ENV}}}Header").append(header)
    etree.SubElement(env, f"{{{SOAP_ENV}}}Body").append(body)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def parse_fault(operation: str, fault: Element) -> SoapFault:
    code = child(fault, "Code")
    values = [text(code, "Value") or text(fault, "faultcode") or "Fault"]
    sub = child(code, "Subcode")
    while sub is not None:
        values.append(text(sub, "Value") or "")
        sub = child(sub, "Subcode")
    reasons = [t.text or "" for t in children(child(fault, "Reason"), "Text")]
    reason = (reasons[0] if reasons else text(fault, "faultstring") or "").strip()
    strip = [v.rpartition(":")[2] for v in values]
    return SoapFault(operation, strip[0], tuple(s for s in strip[1:] if s), reason)


async def call(client: httpx.AsyncClient, url: str, body: Element,
               header: Element | None = None) -> Element:
    """POST ``body`` to ``url``; return the response Body's first element or raise."""
    operation = local(body)
    where = redact(url)
    action = f"{etree.QName(body).namespace}/{operation}"
    headers = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    try:
        response = await client.post(url, content=envelope(body, header), headers=headers)
    except httpx.TimeoutException as exc:
        raise OnvifUnreachable(f"{operation} to {where} timed out; check the address, "
                               "the ONVIF port and that the camera is powered") from exc
    except httpx.HTTPError as exc:
        raise OnvifUnreachable(f"cannot reach {where} for {operation} ({type(exc).__name__}); "
                               "check the address and the ONVIF port") from exc
    if response.status_code == 401:
        raise OnvifAuthError(f"{where} refused the credentials at HTTP level for {operation}; "
                             + AUTH_HINT)
    if response.status_code == 404:
        raise OnvifError(f"no ONVIF service at {where} (HTTP 404 for {operation}); check the "
                         "ONVIF port (often 80, 8000, 8080 or 2020) and that ONVIF is enabled")
    try:
        root = parse(response.content)
    except etree.XMLSyntaxError as exc:
        raise OnvifError(f"{where} answered {operation} with HTTP {response.status_code} and "
                         "no SOAP; it is probably not an ONVIF device, or ONVIF is disabled") from exc
    body_el = child(root, "Body")
    if local(root) != "Envelope" or body_el is None or len(body_el) == 0:
        raise OnvifError(f"{where} answered {operation} with XML that is not a SOAP envelope; "
                         "it is probably not an ONVIF device")
    first = body_el[0]
    if local(first) == "Fault":
        raise parse_fault(operation, first)
    if response.status_code >= 400:
        raise OnvifError(f"{where} answered {operation} with HTTP {response.status_code}")
    return first
