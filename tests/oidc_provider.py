"""A real OpenID Connect provider for the tests, built on authlib's AuthorizationServer.

Its own HTTP server (a thread, a free port on 127.0.0.1), its own RSA keys, discovery,
JWKS, an authorization endpoint that approves at once as ``provider.user`` (the person
"at the keyboard"), and a token endpoint that requires PKCE S256 and the client secret
(client_secret_basic). authlib's ``AuthorizationCodeGrant`` with ``CodeChallenge`` and
``OpenIDCode`` does the protocol; this module only stores codes and users and speaks HTTP
(the standard library's server, so the tests need no web framework of their own).

Knobs for the attacks (``provider.misbehave``): the ``iss``, ``aud`` and lifetime of the
ID tokens it issues, ``alg: none``, and signing with a key it does not publish. ``rotate()``
replaces its signing key (the old one is no longer published).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import AuthorizationCodeMixin, UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey


@dataclass
class User:
    sub: str
    name: str
    groups: list[str] = field(default_factory=list)
    badge: str | None = None
    amr: list[str] = field(default_factory=lambda: ["pwd", "otp", "mfa"])
    acr: str | None = None


@dataclass
class Misbehave:
    """How the next ID tokens are wrong (all None/False: a correct provider)."""

    issuer: str | None = None  # "iss" other than the provider's
    audience: str | None = None  # "aud" other than the client id
    lifetime: int = 300  # seconds; negative: already expired when issued
    alg_none: bool = False  # unsigned
    foreign_key: bool = False  # signed with a key it does not publish (same kid)


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: list[str]

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        return " ".join(s for s in (scope or "").split() if s in ("openid", "profile"))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_amr(self) -> list[str] | None:
        return self.user.amr or None

    def get_acr(self) -> str | None:
        return self.user.acr


class _Request(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: Any, query: dict[str, str], form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._query, self._form = query, form
        self.payload = BasicOAuth2Payload({**query, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._query

    @property
    def form(self) -> dict[str, str]:
        return self._form


class RequiredPkce(CodeChallenge):
    """PKCE for every client (authlib asks it of public clients only): a code is issued only
    for an S256 challenge, and redeemed only with its verifier."""

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: send code_challenge with code_challenge_method=S256")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier'")
        super().validate_code_verifier(grant, result)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class Provider:
    """Start with ``with Provider(...) as op:``; ``op.issuer`` is its base URL."""

    def __init__(self, *, client_id: str = "sightline-district", client_secret: str | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.redirect_uris: list[str] = []
        self.users: dict[str, User] = {}
        self.user: User | None = None  # who signs in at the authorization endpoint
        self.misbehave = Misbehave()
        self.codes: dict[str, Code] = {}
        self.token_requests: list[dict[str, str]] = []
        self.jwks_fetches = 0
        self._kid = 0
        self.key = self._new_key()
        self.published: list[RSAKey] = [self.key]
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.server = self._authorization_server()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="oidc-provider", daemon=True)

    # set-up

    def _new_key(self) -> RSAKey:
        self._kid += 1
        return RSAKey.generate_key(2048, parameters={"kid": f"key-{self._kid}", "use": "sig", "alg": "RS256"})

    def add_user(self, user: User) -> User:
        self.users[user.sub] = user
        self.user = self.user or user
        return user

    def rotate(self) -> RSAKey:
        """A new signing key; the old one is no longer published (a real rotation's last step)."""
        with self._lock:
            self.key = self._new_key()
            self.published = [self.key]
        return self.key

    def __enter__(self) -> Provider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # authlib

    def _authorization_server(self) -> AuthorizationServer:
        provider = self

        class Server(AuthorizationServer):
            def query_client(self, client_id: str) -> Client | None:
                if client_id != provider.client_id:
                    return None
                return Client(provider.client_id, provider.client_secret, provider.redirect_uris)

            def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
                pass

            def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
                return request

            def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
                return status, body, headers

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                pass

        class Grant(AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

            def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
                data = request.payload.data
                provider.codes[code] = Code(
                    code=code,
                    client_id=request.client.get_client_id(),
                    redirect_uri=data.get("redirect_uri", ""),
                    scope=request.client.get_allowed_scope(data.get("scope", "")),
                    user=request.user,
                    nonce=data.get("nonce"),
                    code_challenge=data.get("code_challenge"),
                    code_challenge_method=data.get("code_challenge_method"),
                    auth_time=int(time.time()),
                )

            def query_authorization_code(self, code: str, client: Client) -> Code | None:
                found = provider.codes.get(code)
                return found if found and found.client_id == client.get_client_id() else None

            def delete_authorization_code(self, authorization_code: Code) -> None:
                provider.codes.pop(authorization_code.code, None)  # a code is good once

            def authenticate_user(self, authorization_code: Code) -> User:
                return authorization_code.user

        class IdToken(OpenIDCode):
            def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
                return False

            def generate_user_info(self, user: User, scope: str) -> UserInfo:
                info = UserInfo(sub=user.sub, name=user.name, groups=list(user.groups))
                if user.badge:
                    info["badge_number"] = user.badge
                return info

            def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
                return provider.id_token(request.user, request.authorization_code)

        server = Server(scopes_supported=["openid", "profile"])
        server.register_token_generator("default", BearerTokenGenerator(lambda *a, **k: secrets.token_urlsafe(32)))
        server.register_grant(Grant, [RequiredPkce(required=True), IdToken(require_nonce=True)])
        return server

    def id_token(self, user: User, code: Code) -> str:
        """The ID token for ``user``, as right or as wrong as ``misbehave`` says."""
        m, now = self.misbehave, int(time.time())
        claims: dict[str, Any] = {
            "iss": m.issuer or self.issuer,
            "aud": m.audience or self.client_id,
            "sub": user.sub,
            "iat": now,
            "exp": now + m.lifetime,
            "auth_time": code.auth_time,
            "name": user.name,
            "groups": list(user.groups),
        }
        if m.lifetime < 0:
            claims["iat"] = now + m.lifetime - 300
        if code.nonce:
            claims["nonce"] = code.nonce
        if user.amr:
            claims["amr"] = list(user.amr)
        if user.acr:
            claims["acr"] = user.acr
        if user.badge:
            claims["badge_number"] = user.badge
        if m.alg_none:
            return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        key = self.key
        if m.foreign_key:  # same kid as the published key, made by someone else
            key = RSAKey.generate_key(2048, parameters={"kid": self.key.kid})
        return jwt.encode({"alg": "RS256", "kid": key.kid, "typ": "JWT"}, claims, key)

    # HTTP

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "scopes_supported": ["openid", "profile"],
        }

    def jwks(self) -> dict[str, Any]:
        self.jwks_fetches += 1
        with self._lock:
            return KeySet(list(self.published)).as_dict(private=False)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any, headers: Any = ()) -> None:
                data = body if isinstance(body, str) else json.dumps(body)
                self.send_response(status)
                sent = {k.lower() for k, _ in headers}
                for k, v in headers:
                    self.send_header(k, v)
                if "content-type" not in sent:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data.encode())))
                self.end_headers()
                self.wfile.write(data.encode())

            def _request(self, form: dict[str, str]) -> _Request:
                url = f"{provider.issuer}{self.path}"
                query = dict(parse_qsl(urlsplit(self.path).query))
                return _Request(self.command, url, self.headers, query, form)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                if path == "/.well-known/openid-configuration":
                    self._send(200, provider.discovery())
                elif path == "/jwks":
                    self._send(200, provider.jwks())
                elif path == "/authorize":
                    user = provider.user
                    self._send(*provider.server.create_authorization_response(self._request({}), grant_user=user))
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode()))
                if urlsplit(self.path).path != "/token":
                    self._send(404, {"error": "not_found"})
                    return
                provider.token_requests.append(form)
                self._send(*provider.server.create_token_response(self._request(form)))

        return Handler
