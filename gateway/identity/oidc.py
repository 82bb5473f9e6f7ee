"""Signing in through an agency's OpenID Connect provider: authorization code + PKCE (S256).

How it works (gateway/api/oidc.py speaks HTTP)
- ``start``: a fresh ``state``, ``nonce`` and PKCE verifier, kept for the way back in a
  short-lived cookie sealed with the node key (CredentialBox, shared by every node through
  the secrets directory), so the callback may land on any node: no sticky sessions.
  The browser goes to the provider's authorization endpoint (from its discovery document,
  ``{issuer}/.well-known/openid-configuration``).
- ``finish``: the callback's ``state`` must equal the sealed one (the browser that started
  is the one finishing: no login CSRF) and is accepted once, on every node
  (``gw.receipts``); the code is redeemed at the token endpoint with the verifier and the
  client secret (authlib's OAuth2Client). The ID token must then be signed with an
  asymmetric algorithm (``none`` and HS* are refused: an HMAC "signature" would be made
  with our own client secret) by a key of the provider's JWKS, and carry our issuer,
  our client id as audience, our nonce, and an expiry not past (60 s leeway).
- Keys: the JWKS is cached and fetched again when a token names a key id it does not
  hold (such fetches at most every ``REFETCH_SECONDS``), so a provider's key rotation is followed
  without a restart, and a token signed by a key the provider does not publish is refused.

Every refusal raises :class:`OidcRefused` with the reason for the audit log and the words
for the person.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.oidc_config import OidcProvider

FLOW_COOKIE = "sightline_oidc"
FLOW_PATH = "/signin/oidc"
CALLBACK_PATH = "/signin/oidc/callback"
FLOW_SECONDS = 600  # from the button to the callback
LEEWAY = 60  # clock difference allowed on exp / iat
METADATA_SECONDS = 3600
REFETCH_SECONDS = 10.0
HTTP_TIMEOUT = 10.0
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
SCOPE = "openid profile"


class OidcRefused(Exception):
    """A sign-in through a provider was refused: ``why`` for the audit log, ``tell`` for the person."""

    def __init__(self, why: str, tell: str, *, status: int = 400, provider: OidcProvider | None = None) -> None:
        super().__init__(why)
        self.why = why
        self.tell = tell
        self.status = status
        self.provider = provider


AGAIN = "Go back to the sign-in page and press your agency's button again."


@dataclass(frozen=True)
class Flow:
    """What the callback needs from the start: sealed in the flow cookie."""

    owner: str
    state: str
    nonce: str
    verifier: str
    next: str
    started: float

    def seal(self, box: CredentialBox) -> str:
        return box.seal(json.dumps(self.__dict__, separators=(",", ":")))

    @classmethod
    def open(cls, box: CredentialBox, sealed: str) -> Flow:
        try:
            data = json.loads(box.open(sealed))
            return cls(**data)
        except (CredentialError, ValueError, TypeError) as exc:
            raise OidcRefused(
                "the sign-in cookie was not sealed by this district's key, or was altered", AGAIN
            ) from exc


@dataclass(frozen=True)
class SignedIn:
    provider: OidcProvider
    claims: dict[str, Any]
    next: str


def _token(n: int = 32) -> str:
    return secrets.token_urlsafe(n)


def _b64_header(token: str) -> dict[str, Any]:
    try:
        head = token.split(".", 1)[0]
        data = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, IndexError) as exc:
        raise OidcRefused("the ID token is not a JWT", AGAIN) from exc
    if not isinstance(data, dict):
        raise OidcRefused("the ID token's header is not an object", AGAIN)
    return data


class ProviderClient:
    """One provider's discovery document and keys, cached and shared by every sign-in."""

    def __init__(self, provider: OidcProvider, *, now: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.refetch_seconds = REFETCH_SECONDS
        self._now = now
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._refetched_at = float("-inf")  # the last fetch an unknown key id asked for

    def _get(self, url: str, what: str) -> dict[str, Any]:
        tell = f"The sign-in service of {self.provider.owner_name} cannot be reached. Try again in a minute."
        try:
            r = httpx.get(url, timeout=HTTP_TIMEOUT, follow_redirects=False)
            r.raise_for_status()
            data = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcRefused(f"the provider's {what} ({url}) cannot be read: {exc}", tell, status=502) from exc
        if not isinstance(data, dict):
            raise OidcRefused(f"the provider's {what} ({url}) is not a JSON object", tell, status=502)
        return data

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is not None and self._now() - self._metadata_at < METADATA_SECONDS:
                return self._metadata
        url = f"{self.provider.issuer}/.well-known/openid-configuration"
        data = self._get(url, "discovery document")
        if data.get("issuer") != self.provider.issuer:
            raise OidcRefused(
                f"the discovery document names issuer {data.get('issuer')!r}, not {self.provider.issuer!r}",
                f"The sign-in service of {self.provider.owner_name} is not set up as the district expects. "
                "Tell the district's Sightline administrator.",
                status=502,
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(data.get(key), str):
                raise OidcRefused(
                    f"the discovery document has no {key}", "Tell the district's administrator.", status=502
                )
        with self._lock:
            self._metadata, self._metadata_at = data, self._now()
        return data

    def _fetch_keys(self) -> KeySet:
        data = self._get(self.metadata()["jwks_uri"], "key set (JWKS)")
        try:
            keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise OidcRefused(f"the provider's JWKS cannot be read: {exc}", AGAIN, status=502) from exc
        with self._lock:
            self._keys = keys
        return keys

    def key_for(self, kid: str | None) -> Any:
        """The provider's public key named ``kid``; fetched again once when it is not known."""
        keys = self._keys
        if keys is None:
            keys = self._fetch_keys()
        found = _pick(keys, kid)
        if found is None and self._now() - self._refetched_at >= self.refetch_seconds:
            # a rotation: the provider publishes new keys. At most once per refetch_seconds, so
            # tokens naming made-up key ids cannot turn us into a flood of requests to the provider.
            self._refetched_at = self._now()
            found = _pick(self._fetch_keys(), kid)
        if found is None:
            raise OidcRefused(
                f"the ID token is signed by a key the provider does not publish (kid {kid!r})",
                AGAIN,
                provider=self.provider,
            )
        return found


def _pick(keys: KeySet, kid: str | None) -> Any:
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    for key in keys.keys:
        if key.kid == kid:
            return key
    return None


def wanted_claims(provider: OidcProvider) -> str:
    """The OpenID Connect ``claims`` request parameter (Core 5.5): ask for what we read
    (the second factor in ``amr``/``acr``, the name, badge and groups) in the ID token
    itself. Some providers (panva's oidc-provider among them) put ``amr`` in an ID token
    only when asked, and without it no officer's sign-in would ever count as MFA. Each
    is asked for as voluntary (``null``), so a provider that lacks one still answers."""
    names = ["amr", "acr", "name", provider.groups_claim, *([provider.badge_claim] if provider.badge_claim else [])]
    return json.dumps({"id_token": dict.fromkeys(names)}, separators=(",", ":"))


class RelyingParty:
    """Every configured provider of the site, and the two halves of a sign-in."""

    def __init__(self, providers: dict[str, OidcProvider], box: CredentialBox, public_url: str) -> None:
        self.providers = providers
        self.clients = {owner: ProviderClient(p) for owner, p in providers.items()}
        self._box = box
        self.redirect_uri = public_url.rstrip("/") + CALLBACK_PATH

    def _oauth(self, provider: OidcProvider) -> OAuth2Client:
        try:
            secret = self._box.open(provider.sealed_client_secret)
        except CredentialError as exc:
            raise OidcRefused(
                f"the client secret of {provider.owner}'s provider cannot be opened with this node's key",
                "Sign-in through your agency is misconfigured on this server. Tell the district's administrator.",
                status=503,
                provider=provider,
            ) from exc
        return OAuth2Client(
            client_id=provider.client_id,
            client_secret=secret,
            token_endpoint_auth_method="client_secret_basic",
            redirect_uri=self.redirect_uri,
            scope=SCOPE,
            code_challenge_method="S256",
            timeout=HTTP_TIMEOUT,
        )

    def start(self, owner: str, next_path: str) -> tuple[str, str, Flow]:
        """(the provider's authorization URL, the sealed flow cookie, the flow)."""
        provider = self.providers[owner]
        metadata = self.clients[owner].metadata()
        flow = Flow(owner, _token(), _token(), _token(48), next_path, time.time())
        extra = {"claims": wanted_claims(provider)} if metadata.get("claims_parameter_supported") else {}
        with self._oauth(provider) as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=flow.state,
                code_verifier=flow.verifier,
                nonce=flow.nonce,
                **extra,
            )
        return url, flow.seal(self._box), flow

    def open_flow(self, sealed: str | None) -> Flow:
        if not sealed:
            raise OidcRefused(
                "no sign-in was started in this browser (the flow cookie is missing or expired)",
                "This sign-in was not started from this browser, or took more than 10 minutes. " + AGAIN,
            )
        flow = Flow.open(self._box, sealed)
        if not 0 <= time.time() - flow.started <= FLOW_SECONDS or flow.owner not in self.providers:
            raise OidcRefused("the sign-in took more than 10 minutes", "The sign-in took too long. " + AGAIN)
        return flow

    def finish(self, flow: Flow, state: str | None, code: str | None, first_time: Callable[[str], bool]) -> SignedIn:
        provider = self.providers[flow.owner]
        if not state or not hmac.compare_digest(state.encode(), flow.state.encode()):
            raise OidcRefused(
                "the callback's state does not match the sign-in this browser started", AGAIN, provider=provider
            )
        if not first_time(flow.state):
            raise OidcRefused("the callback's state was already used (a replay)", AGAIN, provider=provider)
        if not code:
            raise OidcRefused("the callback carries no authorization code", AGAIN, provider=provider)
        token = self._redeem(provider, flow, code)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused("the provider's answer holds no ID token", AGAIN, provider=provider)
        claims = self.verify_id_token(provider, id_token, flow.nonce)
        return SignedIn(provider, claims, flow.next)

    def _redeem(self, provider: OidcProvider, flow: Flow, code: str) -> dict[str, Any]:
        endpoint = self.clients[provider.owner].metadata()["token_endpoint"]
        try:
            with self._oauth(provider) as client:
                token = client.fetch_token(endpoint, code=code, code_verifier=flow.verifier)
        except OAuthError as exc:
            raise OidcRefused(
                f"the provider refused the authorization code: {exc.error}"
                + (f" ({exc.description})" if exc.description else ""),
                AGAIN,
                provider=provider,
            ) from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcRefused(
                f"the provider's token endpoint cannot be used: {exc}",
                f"The sign-in service of {provider.owner_name} did not answer. Try again in a minute.",
                status=502,
                provider=provider,
            ) from exc
        return dict(token)

    def verify_id_token(self, provider: OidcProvider, id_token: str, nonce: str) -> dict[str, Any]:
        def refuse(why: str) -> OidcRefused:
            return OidcRefused(f"the ID token {why}", AGAIN, provider=provider)

        header = _b64_header(id_token)
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise refuse(f"uses algorithm {alg!r}; only signatures with the provider's public keys are accepted")
        kid = header.get("kid")
        key = self.clients[provider.owner].key_for(kid if isinstance(kid, str) else None)
        try:
            claims = jwt.decode(id_token, key, algorithms=[alg]).claims
        except (JoseError, ValueError, TypeError) as exc:
            raise refuse(f"has a bad signature ({exc.__class__.__name__})") from exc
        now = time.time()
        if claims.get("iss") != provider.issuer:
            raise refuse(f"was issued by {claims.get('iss')!r}, not {provider.issuer!r}")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        if provider.client_id not in audiences:
            raise refuse(f"is meant for {aud!r}, not this district's client {provider.client_id!r}")
        if len(audiences) > 1 and claims.get("azp") != provider.client_id:
            raise refuse("names several audiences and its azp is not this district's client")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int | float) or exp + LEEWAY <= now:
            raise refuse("has expired")
        if isinstance(iat, int | float) and iat - LEEWAY > now:
            raise refuse("was issued in the future (check the clocks)")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
            str(claims["nonce"]).encode(), nonce.encode()
        ):
            raise refuse("does not carry the nonce of this sign-in")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not 0 < len(sub) <= 255 or not sub.isprintable():
            raise refuse("has no usable subject (sub)")
        return dict(claims)


def signin_url(owner: str, next_path: str) -> str:
    return f"{FLOW_PATH}/{quote(owner, safe='')}?next={quote(next_path, safe='')}"
