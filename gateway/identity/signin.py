"""Web sign-in: password + TOTP for site-file accounts, a server-side session behind an
HttpOnly cookie, the 30-minute idle lock, CSRF protection and failure rate limits.

How it works
- ``POST /api/v1/auth/login`` (gateway/api/signin.py) checks the scrypt password hash and, when the account has
  an authenticator enrolled, the TOTP code (a code whose 30-second step was already
  used is refused: the step is remembered in the store, so a replay is refused on every
  node and after a restart). Success creates a session whose id goes in the
  ``sightline_session`` cookie (HttpOnly, SameSite=Strict, Secure over https). The
  session holds a bearer token from :class:`gateway.identity.tokens.TokenAuthority` carrying
  ``amr`` ["pwd", "otp", "mfa"] or just ["pwd"], so role and MFA are decided exactly as
  for bearer tokens; only a session with "mfa" may open video.
- Every session hangs on a sign-in (emergency/sign_ins.py, method given by the caller
  of :func:`open_web_session`); signing out and the idle lock end it, so every node
  closes the video it opened within a second (gateway/runtime.py).
- Idle lock (CJIS 5.5.5): every request authenticated by the cookie moves the session's
  last-seen time; a request arriving more than ``idle_seconds`` (30 minutes) after the
  previous one finds the session locked: it is deleted, audited as
  ``auth.session_locked`` and answered 401. Requests sent with ``X-Sightline-Activity:
  passive`` (background refreshes) are served without counting as activity; a session
  whose video plays is touched by the node serving it (gateway/app.py), so the lock
  never falls on an officer watching. Sessions
  also end ``lifetime`` seconds (8 hours) after sign-in whatever the activity.
- CSRF: a request authenticated by the cookie that changes state (anything but
  GET/HEAD/OPTIONS) must carry ``X-Requested-With: sightline``, which only our own
  scripts send (a cross-site form cannot set it and we allow no CORS); else 403.
- Every sign-in success and failure is audited as ``auth.login`` with the source address
  (gateway/identity/proxies.py) and a reason; the password and the code are never
  logged. Refusals made without checking (the limits below) are counted per source and
  minute instead of written one by one (gateway/identity/failures.py).

Failure limits, and why the owner is never locked out
- Per username and address: 5 failures in a minute answer 429 (unchecked) for that pair.
- Per address: 20 failures in a minute, and from then on the address is held like an
  account under attack (below): an account that signed in from it before is checked as
  usual, anyone else is admitted only with password *and* a fresh authenticator code,
  and every other attempt answers 429 with Retry-After. A whole agency's patrol cars
  often share one VPN or NAT address; failures sent from there must not lock them out.
- Per account, across all addresses: 10 failures in 15 minutes put the account *under
  attack* (so 55 guesses spread over 11 addresses stop after 10). A hard lock here would
  hand any attacker a switch that turns the real user off, so instead, while it lasts:
  a sign-in from an address this account signed in from within 30 days is checked as
  usual (only the two limits above apply); from anywhere else it is admitted only with
  the right password *and* a fresh authenticator code, and every other attempt answers
  the same 429 with Retry-After, whether or not the password was right, so guessing
  learns nothing. An account with no authenticator enrolled is refused without checking
  from new addresses until the window clears: enrolling one is what keeps its owner in.
  (Someone behind the owner's own address, a shared NAT, is held only to the first two
  limits, as everyone was before.)
  The account counter is not cleared by a success (the owner signing in must not give
  the attacker ten more guesses); it drains as the window slides.

Sessions and failure counters are kept in this process's memory by default: a restart
signs everyone out, and several nodes need sticky sessions. With ``[gateway] redis`` in
the site file they live in Redis instead (gateway/identity/signin_redis.py), shared by every node;
:meth:`SignIn.for_config` is the one place that chooses. When that Redis cannot be reached,
sign-in and cookie requests answer 503 (:class:`SignInUnavailable`); bearer tokens do not
depend on it.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response

from emergency.audit import AuditEvent
from emergency.model import Actor
from emergency.sign_ins import IDLE_LOCKED, PASSWORD_TOTP
from gateway.errors import ApiError
from gateway.identity.failures import audit_bad_credential
from gateway.identity.proxies import client_address
from gateway.identity.tokens import DEFAULT_TTL, STRONG_AMR, AuthError, Identity, TokenAuthority

if TYPE_CHECKING:
    from emergency.site import Account
    from gateway.config import GatewayConfig

SESSION_COOKIE = "sightline_session"
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "sightline"
ACTIVITY_HEADER = "X-Sightline-Activity"
IDLE_SECONDS = 30 * 60
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
GENERIC_REFUSAL = "wrong username, password or code"

AMR_MFA = ("pwd", "otp", "mfa")
AMR_PASSWORD = ("pwd",)


def clear_cookie_header() -> dict[str, str]:
    return {"Set-Cookie": f"{SESSION_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"}


def iso_utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


@dataclass
class WebSession:
    key: str  # sha256 of the cookie value; the value itself is never stored
    account_id: str
    token: str
    token_id: str
    amr: tuple[str, ...]
    created: float
    last_seen: float
    source: str | None

    @property
    def mfa(self) -> bool:
        return bool(STRONG_AMR.intersection(self.amr))


class SessionProblem(Exception):
    """The cookie does not name a usable session; ``locked`` when it ended by idleness."""

    def __init__(self, reason: str, *, locked: bool = False, session: WebSession | None = None) -> None:
        super().__init__(reason)
        self.locked = locked
        self.session = session


class SignInUnavailable(ApiError):
    """The shared sign-in store (Redis) cannot be used right now: answered 503 with the usual
    ``{"error", "detail"}`` body; the caller's session, if any, is left as it is."""

    def __init__(self, detail: str = "sign-in is temporarily unavailable; try again in a minute") -> None:
        super().__init__(503, "unavailable", detail, {"Retry-After": "30", "Cache-Control": "no-store"})


class WebSessions:
    def __init__(
        self, *, idle_seconds: float = IDLE_SECONDS, lifetime: int = DEFAULT_TTL, now: Callable[[], float] = time.time
    ) -> None:
        self.idle_seconds = idle_seconds
        self.lifetime = lifetime
        self._now = now
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(cookie: str) -> str:
        return hashlib.sha256(cookie.encode("utf-8", "replace")).hexdigest()

    def __len__(self) -> int:
        return len(self._sessions)

    def create(
        self, account_id: str, token: str, token_id: str, amr: tuple[str, ...], source: str | None
    ) -> tuple[str, WebSession]:
        cookie = secrets.token_urlsafe(32)
        now = self._now()
        session = WebSession(self._key(cookie), account_id, token, token_id, amr, now, now, source)
        with self._lock:
            self._sessions[session.key] = session
        return cookie, session

    def idle_deadline(self, session: WebSession) -> float:
        return min(session.last_seen + self.idle_seconds, session.created + self.lifetime)

    def lookup(self, cookie: str, *, touch: bool = True) -> WebSession:
        now = self._now()
        with self._lock:
            session = self._sessions.get(self._key(cookie))
            if session is None:
                raise SessionProblem("the session is unknown or has ended")
            if now - session.last_seen > self.idle_seconds:
                del self._sessions[session.key]
                raise SessionProblem(
                    f"no activity for more than {self.idle_seconds:g} seconds", locked=True, session=session
                )
            if now - session.created > self.lifetime:
                del self._sessions[session.key]
                raise SessionProblem("the session reached its maximum length", locked=True, session=session)
            if touch:
                session.last_seen = now
            return session

    def end(self, cookie: str) -> WebSession | None:
        with self._lock:
            return self._sessions.pop(self._key(cookie), None)

    def touch_key(self, key: str) -> None:
        """Count as activity on the session stored under ``key`` (its video is playing)."""
        now = self._now()
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and now - session.last_seen <= self.idle_seconds:
                session.last_seen = max(session.last_seen, now)

    def sweep(self) -> list[WebSession]:
        """Remove sessions past their idle or absolute limit; returns them for auditing."""
        now = self._now()
        with self._lock:
            stale = [
                s
                for s in self._sessions.values()
                if now - s.last_seen > self.idle_seconds or now - s.created > self.lifetime
            ]
            for s in stale:
                del self._sessions[s.key]
        return stale


class FailureLimiter:
    """Counts failed sign-ins in a sliding window per key."""

    def __init__(self, limit: int, window: float, now: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._now = now
        self._hits: dict[Any, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: Any, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and now - hits[0] > self.window:
            hits.popleft()
        return hits

    def retry_after(self, key: Any) -> int:
        """Seconds to wait, or 0 when the key may try again."""
        now = self._now()
        with self._lock:
            hits = self._recent(key, now)
            if len(hits) < self.limit:
                if not hits:
                    self._hits.pop(key, None)
                return 0
            return max(1, int(self.window - (now - hits[0])) + 1)

    def record(self, key: Any) -> None:
        now = self._now()
        with self._lock:
            self._recent(key, now).append(now)
            if len(self._hits) > 10_000:  # forget the oldest keys rather than grow without bound
                for k in list(self._hits)[:1000]:
                    del self._hits[k]

    def clear(self, key: Any) -> None:
        with self._lock:
            self._hits.pop(key, None)


class SignIn:
    """The per-app sign-in state: sessions and failure counters. In this process's memory,
    or in Redis when ``shared`` (a :class:`gateway.identity.signin_redis.RedisSignInStore`) is given."""

    def __init__(
        self,
        *,
        idle_seconds: float = IDLE_SECONDS,
        lifetime: int = DEFAULT_TTL,
        per_user_limit: int = 5,
        per_address_limit: int = 20,
        window: float = 60.0,
        per_account_limit: int = 10,
        account_window: float = 15 * 60.0,
        known_for: float = 30 * 86400.0,
        shared: Any = None,
    ) -> None:
        self.shared = shared
        if shared is None:
            self.sessions = WebSessions(idle_seconds=idle_seconds, lifetime=lifetime)
            self.per_user = FailureLimiter(per_user_limit, window)
            self.per_address = FailureLimiter(per_address_limit, window)
            self.per_account = FailureLimiter(per_account_limit, account_window)
            # (account, address) pairs that signed in: a "limiter" of one whose window is
            # how long an address stays known, so the Redis one serves as well
            self.known = FailureLimiter(1, known_for)
        else:
            self.sessions = shared.sessions(idle_seconds=idle_seconds, lifetime=lifetime)
            self.per_user = shared.limiter("user", per_user_limit, window)
            self.per_address = shared.limiter("address", per_address_limit, window)
            self.per_account = shared.limiter("account", per_account_limit, account_window)
            self.known = shared.limiter("known", 1, known_for)

    def known_source(self, account: str, source: str | None) -> bool:
        """Whether ``account`` signed in from ``source`` within ``known_for``."""
        return source is not None and self.known.retry_after((account, source)) > 0

    def remember_source(self, account: str, source: str | None) -> None:
        if source is not None and not self.known_source(account, source):
            self.known.record((account, source))

    @classmethod
    def for_config(cls, config: GatewayConfig) -> SignIn:
        """Memory, or Redis when the site file names one (``[gateway] redis``). Raises
        :class:`gateway.identity.signin_redis.SignInStoreUnreachable` (a ConfigError) when it is named
        but cannot be reached, so the node does not start half-working."""
        if not config.redis_url:
            return cls()
        from gateway.identity.signin_redis import RedisSignInStore

        return cls(shared=RedisSignInStore.connect(config))

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()


def sign_in_state(request: Request) -> SignIn:
    state = getattr(request.app.state, "signin", None)
    if state is None:
        state = request.app.state.signin = SignIn()
    return state


def _gw(request: Request):
    return request.app.state.gateway


def secure_cookies(request: Request) -> bool:
    return request.url.scheme == "https" or _gw(request).config.public_url.startswith("https://")


def open_web_session(
    request: Request,
    response: Response,
    account: Account,
    amr: tuple[str, ...],
    *,
    reason: str,
    details: dict[str, Any] | None = None,
    method: str = PASSWORD_TOTP,
) -> tuple[Actor, WebSession]:
    """Sign ``account`` in to the pages, however it proved who it is (password and code,
    its agency's provider, a guest pass): record the sign-in (``method``: how, e.g.
    "password+totp", "oidc", "guest"), issue the session's token, create the session,
    set the cookie and audit ``auth.login`` with ``reason``. Raises
    :class:`SignInUnavailable` when the shared session store cannot be reached."""
    gw = _gw(request)
    state = sign_in_state(request)
    source = client_address(request)
    record = gw.sign_ins.open(account.id, method=method, mfa="mfa" in amr, ttl=state.sessions.lifetime)
    token, token_id = gw.tokens.issue(account.id, ttl=state.sessions.lifetime, amr=amr, sign_in=record)
    cookie, session = state.sessions.create(account.id, token, token_id, amr, source)
    actor = Actor.from_account(account, mfa=session.mfa, delegations=gw.config.site.delegations(account))
    gw.audit.append(
        AuditEvent.AUTH_LOGIN,
        actor=actor,
        object=f"account:{account.id}",
        source=source,
        reason=reason,
        details={"amr": list(amr), "session": token_id, "sign_in": record.id, "method": method, **(details or {})},
    )
    response.set_cookie(
        SESSION_COOKIE, cookie, httponly=True, samesite="strict", secure=secure_cookies(request), path="/"
    )
    response.headers["Cache-Control"] = "no-store"
    return actor, session


def cookie_session(request: Request, cookie: str) -> WebSession:
    """The session the cookie names, with idle and lifetime limits applied (and audited)."""
    state = sign_in_state(request)
    gw = _gw(request)
    passive = request.headers.get(ACTIVITY_HEADER, "").lower() == "passive"
    try:
        session = state.sessions.lookup(cookie, touch=not passive)
    except SessionProblem as exc:
        if exc.locked and exc.session is not None:
            gw.audit.append(
                AuditEvent.AUTH_SESSION_LOCKED,
                actor_id=exc.session.account_id,
                object=f"session:{exc.session.token_id}",
                source=client_address(request),
                reason=str(exc),
            )
            end_session_sign_in(gw.tokens, exc.session, IDLE_LOCKED)
        _sweep(request, state)
        raise
    _sweep(request, state)
    return session


def _sweep(request: Request, state: SignIn) -> None:
    sweep_sessions(state, _gw(request).audit, _gw(request).tokens)


def end_session_sign_in(tokens: TokenAuthority, session: WebSession, reason: str, *, by: str | None = None) -> None:
    """End the sign-in behind a web session that ended (signed out, locked): its token is
    then refused everywhere and every node closes the video it opened (gateway/runtime.py)."""
    sid = tokens.sign_in_of(session.token)
    if sid and tokens.sign_ins is not None:
        tokens.sign_ins.end(sid, reason, by=by or session.account_id)
        tokens.forget(sid)


def keep_watching_sessions_awake(state: SignIn, keys: set[str]) -> None:
    """A session whose video plays is not idle: the node serving the video touches the
    web sessions that opened it (gateway/app.py, well within the idle limit)."""
    for key in keys:
        try:
            state.sessions.touch_key(key)
        except SignInUnavailable:
            return


def sweep_sessions(state: SignIn, audit: Any, tokens: TokenAuthority | None = None) -> int:
    """End (and audit, once across nodes) the sessions past their limits, and their
    sign-ins. Runs on cookie requests and every minute (gateway/app.py), so a session
    nobody uses again still gets its entry before a shared store would expire it silently."""
    try:
        stale = state.sessions.sweep()
    except SignInUnavailable:
        return 0  # the shared store went away; the next sweep does it
    for s in stale:
        audit.append(
            AuditEvent.AUTH_SESSION_LOCKED,
            actor_id=s.account_id,
            object=f"session:{s.token_id}",
            source=s.source,
            reason="no activity within the idle limit",
        )
        if tokens is not None:
            end_session_sign_in(tokens, s, IDLE_LOCKED)
    return len(stale)


def cookie_identity(request: Request, cookie: str) -> Identity:
    """For ``deps.identity``: authenticate by the session cookie, enforcing CSRF and idle lock."""
    gw = _gw(request)
    try:
        session = cookie_session(request, cookie)
    except SessionProblem as exc:
        if exc.locked:  # audited as auth.session_locked where the lock falls
            gw.metrics.auth_failures.inc()
        else:
            audit_bad_credential(request, kind="session cookie", reason=f"session cookie: {exc}")
        detail = (
            "signed out after a period without activity; sign in again"
            if exc.locked
            else "your session has ended; sign in again"
        )
        raise ApiError(401, "unauthorized", detail, clear_cookie_header()) from None
    try:
        ident = replace(gw.tokens.authenticate(session.token), web_session=session.key)
    except AuthError as exc:
        sign_in_state(request).sessions.end(cookie)
        raise ApiError(401, "unauthorized", f"{exc}; sign in again", clear_cookie_header()) from None
    if request.method.upper() not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != CSRF_VALUE:
        gw.audit.append(
            AuditEvent.PERMISSION_DENIED,
            actor=ident.actor,
            object=f"http:{request.method} {request.url.path}",
            outcome="denied",
            source=client_address(request),
            reason=f"cookie-authenticated request without the {CSRF_HEADER} header (possible CSRF)",
        )
        raise ApiError(
            403,
            "csrf",
            f"send the header '{CSRF_HEADER}: {CSRF_VALUE}' with requests that change "
            "something (the Sightline pages do)",
        )
    return ident


def page_identity(request: Request) -> tuple[Identity | None, bool]:
    """For page routes: (identity, locked). No CSRF check (pages are GET)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None, False
    try:
        session = cookie_session(request, cookie)
        return _gw(request).tokens.authenticate(session.token), False
    except SessionProblem as exc:
        return None, exc.locked
    except AuthError:
        sign_in_state(request).sessions.end(cookie)
        return None, False
