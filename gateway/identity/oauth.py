"""OAuth2 client credentials (RFC 6749 4.4) for the district's records systems.

``POST /oauth/token`` (``application/x-www-form-urlencoded``) with
``grant_type=client_credentials`` and an optional ``scope`` (a subset of the client's
``records:threats records:restraints records:reports``); the client authenticates with
HTTP Basic (``client_secret_basic``) or form fields (``client_secret_post``).

The protocol work (grant dispatch, client authentication, error codes) is authlib's
``AuthorizationServer`` with its ``ClientCredentialsGrant``. authlib has no Starlette
server integration, so this module supplies the small adapter such an integration
would: an ``OAuth2Request`` built from the parsed form and headers, and
``handle_response`` turning authlib's (status, body, headers) into a Starlette
response. The form is parsed here (no python-multipart), which also lets us refuse
repeated parameters and over-long bodies as RFC 6749 3.2 asks.

The access token is the gateway's own JWT (:class:`gateway.identity.tokens.TokenAuthority`):
``sub`` = client id, ``amr`` = ["client_credentials"], ``scope``; so the records
endpoints authenticate it through the ordinary bearer dependency. Nothing is stored per
token; every issuance and refusal is audited (repeated refusals from one source as one
``auth.failures`` entry a minute with the count: gateway/identity/failures.py).

Clients are ``records_client`` accounts of the site file; their secret sits on the
account entry as an scrypt hash (or sealed), popped before the domain sees the file.
Error bodies carry RFC 6749's ``error``/``error_description`` and this API's
``detail``, so both shapes hold.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.errors import InvalidClientError, InvalidRequestError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6749.util import scope_to_list
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from emergency.audit import AuditEvent
from emergency.permissions import Permission, role_holds
from emergency.site import RECORD_SCOPES
from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.failures import failure_summary
from gateway.identity.guards import client_credentials
from gateway.identity.logins import hash_password, verify_password
from gateway.identity.proxies import client_address
from gateway.identity.tokens import CLIENT_CREDENTIALS_AMR, AuthError

router = APIRouter(tags=["oauth"])

TOKEN_PATH = "/oauth/token"
CLIENT_TOKEN_TTL = 3600
MAX_FORM_BYTES = 4096
FORM_TYPE = "application/x-www-form-urlencoded"
_ALLOWED_PARAMS = {"grant_type", "scope", "client_id", "client_secret"}
_BAD_CLIENT = "client authentication failed: unknown client or wrong secret"


def hash_client_secret(secret: str) -> str:
    """The form to store in the site file's ``client_secret``."""
    return hash_password(secret)


def new_client_secret() -> str:
    return secrets.token_urlsafe(32)


class RecordsClient(ClientMixin):
    """A ``records_client`` account as authlib sees it."""

    def __init__(self, account_id: str, scopes: tuple[str, ...], stored_secret: str | None, box_dir) -> None:
        self.account_id = account_id
        self.scopes = scopes
        self._stored = stored_secret
        self._box_dir = box_dir

    def get_client_id(self) -> str:
        return self.account_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope_to_list(scope) if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        stored = self._stored
        if stored is not None and stored.startswith("enc:"):
            try:
                plain = CredentialBox.for_dir(self._box_dir).open(stored)
            except CredentialError:
                return False
            return hmac.compare_digest(plain.encode("utf-8"), client_secret.encode("utf-8"))
        # scrypt; an unknown client or one without a secret checks against a decoy, so a
        # refusal takes as long either way and says nothing about which clients exist.
        return verify_password(client_secret, stored)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return (
            self._stored is not None and endpoint == "token" and method in ("client_secret_basic", "client_secret_post")
        )

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class ScopedClientCredentials(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_requested_scope(self) -> None:
        requested = scope_to_list(self.request.payload.scope) or []
        extra = [s for s in requested if s not in self.client.scopes]
        if extra:
            raise InvalidScopeError(
                description=_ascii(
                    f"scope {' '.join(extra)} is not granted to this client; "
                    f"it may ask for {' '.join(self.client.scopes)}"
                )
            )

    def create_token_response(self):
        # Default scope = all of the client's scopes (RFC 6749 3.3 allows a default).
        self.request.scope = self.client.get_allowed_scope(self.request.payload.scope)
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class FormRequest(OAuth2Request):
    """authlib's request type over a form we parsed ourselves (the Starlette adapter)."""

    def __init__(self, method: str, uri: str, form: dict[str, str], headers) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = BasicOAuth2Payload(form)
        self._form = form

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class SightlineAuthorizationServer(AuthorizationServer):
    def __init__(self, gateway) -> None:
        super().__init__(scopes_supported=list(RECORD_SCOPES))
        self._gw = gateway
        self.issued: dict[str, Any] | None = None
        self.register_grant(ScopedClientCredentials)
        self.register_token_generator("default", self._generate)

    # authlib hooks

    def query_client(self, client_id: str) -> RecordsClient:
        account = self._gw.config.site.accounts.get(client_id)
        if account is None or not role_holds(account.role, Permission.USE_CLIENT_CREDENTIALS):
            return RecordsClient(client_id, (), None, self._gw.config.secrets_dir)  # never authenticates
        return RecordsClient(
            account.id, account.scopes, self._gw.config.client_secrets.get(account.id), self._gw.config.secrets_dir
        )

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Tokens are stateless JWTs; the endpoint audits the issuance."""

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> JSONResponse:
        body = dict(body) if isinstance(body, dict) else {}
        if "error" in body:
            if body["error"] == "invalid_client":
                status, body["error_description"] = 401, _BAD_CLIENT
                headers = [*headers, ("WWW-Authenticate", 'Basic realm="sightline"')]
            body.setdefault("error_description", body["error"].replace("_", " "))
            body["detail"] = body["error_description"]
        return JSONResponse(body, status_code=status, headers=dict(headers))

    def _generate(
        self,
        grant_type: str,
        client: RecordsClient,
        user=None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        scopes = tuple(scope_to_list(scope) or client.scopes)
        try:
            token, jti = self._gw.tokens.issue(
                client.account_id, ttl=CLIENT_TOKEN_TTL, amr=(CLIENT_CREDENTIALS_AMR,), scopes=scopes
            )
        except AuthError as exc:
            raise InvalidScopeError(description=_ascii(str(exc))) from None
        self.issued = {"token_id": jti, "scope": " ".join(scopes)}
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": CLIENT_TOKEN_TTL,
            "scope": " ".join(scopes),
        }


def _ascii(text: str) -> str:
    """error_description allows printable ASCII without quote or backslash (RFC 6749 5.2)."""
    return "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '"\\' else "?" for c in text)[:300]


class TokenResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access_token: str
    token_type: str = Field(pattern="^Bearer$")
    expires_in: int
    scope: str = Field(description="space-separated: the scopes this token carries")


class OAuthError(BaseModel):
    """RFC 6749 5.2 error, plus this API's ``detail`` (same text as ``error_description``)."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(
        description="invalid_request, invalid_client, invalid_grant, unauthorized_client, "
        "unsupported_grant_type or invalid_scope"
    )
    error_description: str
    detail: str


_FORM_SCHEMA = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "scope": {"type": "string", "description": "space-separated subset of " + " ".join(RECORD_SCOPES)},
        "client_id": {"type": "string", "description": "client_secret_post only"},
        "client_secret": {"type": "string", "description": "client_secret_post only"},
    },
    "additionalProperties": False,
}


@router.post(
    TOKEN_PATH,
    response_model=TokenResponse,
    summary="OAuth2 client credentials token for a records system",
    responses={400: {"model": OAuthError}, 401: {"model": OAuthError}},
    openapi_extra={
        "requestBody": {"required": True, "content": {FORM_TYPE: {"schema": _FORM_SCHEMA}}},
        "security": [{"clientBasic": []}, {}],
    },
    dependencies=[Depends(client_credentials("a records system's client id and secret, checked by the endpoint"))],
)
async def token(request: Request) -> JSONResponse:
    """Client authentication: HTTP Basic (client_secret_basic) or client_id/client_secret
    in the form (client_secret_post). Success and failure are audited."""
    gw = request.app.state.gateway
    server = SightlineAuthorizationServer(gw)
    source = client_address(request)
    try:
        form = await _read_form(request)
    except InvalidRequestError as exc:
        response = server.handle_error_response(None, exc)
        _audit(gw, request, None, response, None, source)
        return response
    if not _basic_readable(request):
        response = server.handle_error_response(None, InvalidClientError())
        _audit(gw, request, form, response, None, source)
        return response
    uri = gw.config.public_url.rstrip("/") + TOKEN_PATH  # how clients reach us (TLS ends in front of us)
    try:
        oauth_request = FormRequest(request.method, uri, form, request.headers)
    except Exception as exc:  # authlib: InsecureTransportError when public_url is not https
        response = server.handle_response(*_error(exc))
        _audit(gw, request, form, response, None, source)
        return response
    response = server.create_token_response(oauth_request)
    _audit(gw, request, form, response, server.issued, source)
    return response


def _error(exc: Exception):
    code = getattr(exc, "error", None) or "invalid_request"
    return 400, {"error": code, "error_description": _ascii(getattr(exc, "description", "") or str(exc))}, []


async def _read_form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != FORM_TYPE:
        raise InvalidRequestError(description=f"send the parameters as {FORM_TYPE}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequestError(description=f"the form is larger than {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError(description="the body is not a valid url-encoded form") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise InvalidRequestError(description=_ascii(f"parameter {key} is repeated"))
        if key not in _ALLOWED_PARAMS:
            raise InvalidRequestError(description=_ascii(f"unknown parameter {key[:40]}"))
        form[key] = value
    if not form.get("grant_type"):
        raise InvalidRequestError(description="grant_type is required (client_credentials)")
    if any(not _printable(v) for v in form.values()):
        raise InvalidRequestError(description="parameters must be printable ASCII")
    return form


def _printable(text: str) -> bool:
    return all(0x20 <= ord(c) <= 0x7E for c in text) and len(text) <= 512


def _basic_readable(request: Request) -> bool:
    """Whether authlib can read the Basic credentials: its parser raises (a 500) on a value
    that is not ASCII base64 of UTF-8 text, where the answer is simply invalid_client."""
    scheme, _, value = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "basic":
        return True
    try:
        base64.b64decode(value.strip()).decode("utf-8")
    except (ValueError, UnicodeDecodeError):  # binascii.Error is a ValueError
        return False
    return True


def _claimed_client(request: Request, form: dict[str, str] | None) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value, validate=True).decode("utf-8").partition(":")[0][:100] or "unknown"
        except (ValueError, UnicodeDecodeError):
            return "unknown"
    return ((form or {}).get("client_id") or "unknown")[:100]


def _audit(
    gw,
    request: Request,
    form: dict[str, str] | None,
    response: JSONResponse,
    issued: dict[str, Any] | None,
    source: str | None,
) -> None:
    client = _claimed_client(request, form)
    if response.status_code == 200 and issued:
        gw.audit.append(
            AuditEvent.AUTH_TOKEN_ISSUED,
            actor_id=client,
            object=f"account:{client}",
            source=source,
            reason="OAuth2 client credentials",
            details={
                "token_id": issued["token_id"],
                "scope": issued["scope"],
                "ttl_seconds": CLIENT_TOKEN_TTL,
                "amr": [CLIENT_CREDENTIALS_AMR],
            },
        )
        return
    body = json.loads(bytes(response.body))
    gw.metrics.auth_failures.inc()
    reason = f"{body.get('error')}: {body.get('error_description')}"
    if failure_summary(request).first(source, kind="client credentials", reason=f"client {client}: {reason}"):
        gw.audit.append(
            AuditEvent.AUTH_TOKEN_ISSUED,
            actor_id=client,
            object=f"account:{client}",
            outcome="failure",
            source=source,
            reason=reason,
            details={"grant_type": (form or {}).get("grant_type"), "scope": (form or {}).get("scope")},
        )
