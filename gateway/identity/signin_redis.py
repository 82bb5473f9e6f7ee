"""Page sign-in sessions and sign-in failure limits shared by several nodes through Redis.

Why: by default (gateway/identity/signin.py) a node keeps the sessions behind the
``sightline_session`` cookie and the failed sign-in counters in its own memory, so behind
a load balancer a cookie made on node A is unknown on node B and each node counts failures
on its own. With ``[gateway] redis = "redis://host:port/db"`` in the site file every node
keeps them in that Redis instead: a cookie works on any node, sign-out (and the idle lock)
ends it on all of them at once, and five bad passwords spread over the nodes still lock the
username. Apart from the camera ownership leases (gateway/media/camera_leases.py, which fall
back to pulling the camera directly) nothing else uses Redis: bearer tokens, video and the
ticker keep working without it; while it is unreachable sign-in and cookie requests answer 503 (and a node
will not start if it cannot reach it).

What is stored (keys under ``sightline:<district id>:signin:``, the district id of the site
file, so every node of one district shares them; use another database number to keep a
second deployment apart):

- ``session:<sha256 of the cookie>`` -- a hash: ``record``, the session (account, its
  bearer token, token id, amr, source address) sealed with the node's
  :class:`gateway.identity.credentials.CredentialBox` and bound to this key, plus ``created`` and
  ``last_seen`` (Unix seconds, in clear: the idle and lifetime checks run in a Lua script).
  The cookie value itself is never stored. Redis expires the key an hour after the
  session's absolute lifetime; the idle lock is decided from ``last_seen`` on every use.
- ``sessions:by_seen`` / ``sessions:by_created`` -- sorted sets of those sha256 ids by
  last use and by sign-in time, so ``sweep()`` finds ended sessions without scanning.
- ``failures:user:<sha256>`` / ``failures:address:<sha256>`` / ``failures:account:<sha256>``
  -- a sorted set of failure times per (username, address), per address, or per username
  across addresses: a sliding window, expiring with it.
- ``failures:known:<sha256>`` -- the last sign-in of an account from an address, kept
  30 days: while the account is limited, its owner's known addresses are still checked.

Every node of a district must therefore share the contents of the secrets directory
(``<data_dir>/secrets``: the token signing key and ``camera-credentials.key`` that seals the
session records), and keep its clock NTP-synchronised (the idle lock compares the nodes'
wall clocks). The Redis password, if any, comes from the ``REDIS_PASSWORD`` environment
variable, never from the site file; use ``rediss://`` when Redis is on another host.

Concurrency: looking a session up, locking it for idleness and moving ``last_seen`` is one
Lua script, so a touch on one node cannot bring back a session another node just ended,
and when several nodes sweep at once exactly one deletes (and so audits) each ended
session.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from gateway.config import ConfigError
from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.signin import IDLE_SECONDS, SessionProblem, SignInUnavailable, WebSession
from gateway.identity.tokens import DEFAULT_TTL

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

log = logging.getLogger(__name__)

PASSWORD_ENV = "REDIS_PASSWORD"
# Redis forgets a session this long after its absolute lifetime (the gateway ends it at the
# lifetime itself; the margin leaves a sweep on some node time to audit it first).
TTL_MARGIN = 3600
SWEEP_BATCH = 100
TIMEOUT_SECONDS = 2.0
MISCONFIGURED = (
    "sign-in is misconfigured on this server (its sessions cannot be opened with this node's key); "
    "tell the administrator"
)

# Looks a session up, applies the idle and lifetime limits and (mode "touch") moves
# last_seen, atomically. A session past a limit is deleted here, so of several nodes
# looking or sweeping at once exactly one gets it back with its reason and audits it.
# KEYS: session hash, index by last_seen, index by created.
# ARGV: now, idle seconds, lifetime seconds, mode ("touch" | "peek" | "sweep"), member.
_SESSION_SCRIPT = """
local h = redis.call('HMGET', KEYS[1], 'record', 'created', 'last_seen')
if not h[1] or not h[2] or not h[3] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
  return {'missing'}
end
local now, created, seen = tonumber(ARGV[1]), tonumber(h[2]), tonumber(h[3])
local status = 'ok'
if now - seen > tonumber(ARGV[2]) then
  status = 'idle'
elseif now - created > tonumber(ARGV[3]) then
  status = 'lifetime'
end
if status ~= 'ok' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
  return {status, h[1], h[2], h[3]}
end
if ARGV[4] == 'sweep' then
  redis.call('ZADD', KEYS[2], h[3], ARGV[5])
  return {'ok'}
end
if ARGV[4] == 'touch' and now > seen then
  redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[5])
  h[3] = ARGV[1]
end
return {'ok', h[1], h[2], h[3]}
"""


class SignInStoreUnreachable(ConfigError):
    """``[gateway] redis`` is set but that Redis cannot be used at start."""


def namespace_for(config: GatewayConfig) -> str:
    return f"sightline:{config.site.district_id}"


def safe_url(url: str) -> str:
    """The URL without any credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc, query="").geturl()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _num(value: float) -> str:
    return repr(float(value))


class _Link:
    """The Redis client plus what a failed call turns into: SignInUnavailable (503), logged
    once a minute at most, and a line when it answers again."""

    def __init__(self, client: redis.Redis, where: str) -> None:
        self.client = client
        self.where = where
        self._down_since: float | None = None
        self._last_warning = 0.0
        self._lock = threading.Lock()

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            now = time.monotonic()
            with self._lock:
                first = self._down_since is None
                if first:
                    self._down_since = now
                if first or now - self._last_warning > 60:
                    self._last_warning = now
                    log.warning(
                        "sign-in store %s unreachable (%s: %s); sign-in and cookie requests answer 503 "
                        "until it is back",
                        self.where,
                        type(exc).__name__,
                        exc,
                    )
            raise SignInUnavailable() from None
        if self._down_since is not None:
            with self._lock:
                if self._down_since is not None:
                    log.warning(
                        "sign-in store %s reachable again after %.0f s", self.where, time.monotonic() - self._down_since
                    )
                    self._down_since = None


class RedisWebSessions:
    """:class:`gateway.identity.signin.WebSessions` kept in Redis: same methods, same answers (except
    that a looked-up session is a fresh object, not the one ``create`` returned). ``link`` is
    a client made by :meth:`RedisSignInStore.client_for` (it decodes replies to str)."""

    def __init__(
        self,
        link: _Link | redis.Redis,
        namespace: str,
        box: CredentialBox,
        *,
        idle_seconds: float = IDLE_SECONDS,
        lifetime: int = DEFAULT_TTL,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._link = link if isinstance(link, _Link) else _Link(link, "redis")
        self._r = self._link.client
        self._box = box
        self._prefix = f"{namespace}:signin:"
        self._by_seen = f"{self._prefix}sessions:by_seen"
        self._by_created = f"{self._prefix}sessions:by_created"
        self._script = self._r.register_script(_SESSION_SCRIPT)
        self.idle_seconds = idle_seconds
        self.lifetime = lifetime
        self._now = now

    @staticmethod
    def _key(cookie: str) -> str:
        return _sha256(cookie)

    def _hash_key(self, key: str) -> str:
        return f"{self._prefix}session:{key}"

    def _ttl(self) -> int:
        return int(math.ceil(self.lifetime)) + TTL_MARGIN

    def __len__(self) -> int:
        with self._link.guard():
            return int(self._r.zcard(self._by_seen))

    def create(
        self, account_id: str, token: str, token_id: str, amr: tuple[str, ...], source: str | None
    ) -> tuple[str, WebSession]:
        cookie = secrets.token_urlsafe(32)
        now = self._now()
        session = WebSession(self._key(cookie), account_id, token, token_id, tuple(amr), now, now, source)
        created = _num(now)
        record = self._box.seal(
            json.dumps(
                {
                    "v": 1,
                    "key": session.key,
                    "created": created,
                    "account_id": account_id,
                    "token": token,
                    "token_id": token_id,
                    "amr": list(amr),
                    "source": source,
                },
                separators=(",", ":"),
            )
        )
        ttl = self._ttl()
        with self._link.guard():
            pipe = self._r.pipeline(transaction=True)
            pipe.hset(self._hash_key(session.key), mapping={"record": record, "created": created, "last_seen": created})
            pipe.expire(self._hash_key(session.key), ttl)
            pipe.zadd(self._by_seen, {session.key: now})
            pipe.zadd(self._by_created, {session.key: now})
            pipe.expire(self._by_seen, ttl)
            pipe.expire(self._by_created, ttl)
            pipe.execute()
        return cookie, session

    def idle_deadline(self, session: WebSession) -> float:
        return min(session.last_seen + self.idle_seconds, session.created + self.lifetime)

    def _run(self, key: str, mode: str, now: float) -> list[str]:
        with self._link.guard():
            return self._script(
                keys=[self._hash_key(key), self._by_seen, self._by_created],
                args=[_num(now), _num(self.idle_seconds), _num(self.lifetime), mode, key],
            )

    def _open(self, key: str, record: str, created: str, last_seen: str) -> WebSession | None:
        """The session a stored record holds; None when it was not made for this key (edited
        or copied in Redis). Raises SignInUnavailable when this node's key cannot open it."""
        try:
            data = json.loads(self._box.open(record))
        except CredentialError:
            log.error(
                "a sign-in session in Redis cannot be opened with this node's key "
                "(secrets/camera-credentials.key): every node must share the secrets directory"
            )
            raise SignInUnavailable(MISCONFIGURED) from None
        except ValueError:
            data = None
        if not isinstance(data, dict) or data.get("key") != key or data.get("created") != created:
            log.warning("sign-in session %s… in Redis does not match its sealed record; ended", key[:12])
            with self._link.guard():
                self._r.delete(self._hash_key(key))
            return None
        return WebSession(
            key,
            data["account_id"],
            data["token"],
            data["token_id"],
            tuple(data["amr"]),
            float(created),
            float(last_seen),
            data.get("source"),
        )

    def lookup(self, cookie: str, *, touch: bool = True) -> WebSession:
        key = self._key(cookie)
        reply = self._run(key, "touch" if touch else "peek", self._now())
        status = reply[0]
        session = self._open(key, *reply[1:4]) if status != "missing" else None
        if session is None:
            raise SessionProblem("the session is unknown or has ended")
        if status == "idle":
            raise SessionProblem(
                f"no activity for more than {self.idle_seconds:g} seconds", locked=True, session=session
            )
        if status == "lifetime":
            raise SessionProblem("the session reached its maximum length", locked=True, session=session)
        return session

    def touch_key(self, key: str) -> None:
        """Count as activity on the session stored under ``key`` (its video is playing)."""
        self._run(key, "touch", self._now())

    def end(self, cookie: str) -> WebSession | None:
        key = self._key(cookie)
        with self._link.guard():
            pipe = self._r.pipeline(transaction=True)
            pipe.hmget(self._hash_key(key), ["record", "created", "last_seen"])
            pipe.delete(self._hash_key(key))
            pipe.zrem(self._by_seen, key)
            pipe.zrem(self._by_created, key)
            fields, deleted, _, _ = pipe.execute()
        if not deleted or not all(fields):
            return None  # unknown, or another node ended it first
        try:
            return self._open(key, *fields)
        except SignInUnavailable:
            return None  # deleted all the same; this node just cannot say whose it was

    def sweep(self) -> list[WebSession]:
        """Remove sessions past their idle or absolute limit; returns them for auditing.
        Safe on every node at once: each ended session is returned by one node only."""
        now = self._now()
        with self._link.guard():
            pipe = self._r.pipeline(transaction=False)
            pipe.zrangebyscore(self._by_seen, "-inf", f"({_num(now - self.idle_seconds)}", start=0, num=SWEEP_BATCH)
            pipe.zrangebyscore(self._by_created, "-inf", f"({_num(now - self.lifetime)}", start=0, num=SWEEP_BATCH)
            idle, old = pipe.execute()
        stale: list[WebSession] = []
        for key in dict.fromkeys([*idle, *old]):
            reply = self._run(key, "sweep", now)
            if reply[0] not in ("idle", "lifetime"):
                continue
            try:
                session = self._open(key, *reply[1:4])
            except SignInUnavailable:
                continue  # logged; nothing this node can audit
            if session is not None:
                stale.append(session)
        return stale


class RedisFailureLimiter:
    """:class:`gateway.identity.signin.FailureLimiter` kept in Redis: a sliding window of failure
    times in one sorted set per key, expiring with the window. Times are wall-clock
    seconds (nodes' monotonic clocks cannot be compared)."""

    def __init__(
        self,
        link: _Link | redis.Redis,
        namespace: str,
        name: str,
        limit: int,
        window: float,
        now: Callable[[], float] = time.time,
    ) -> None:
        self._link = link if isinstance(link, _Link) else _Link(link, "redis")
        self._r = self._link.client
        self._prefix = f"{namespace}:signin:failures:{name}:"
        self.limit = limit
        self.window = window
        self._now = now

    def _redis_key(self, key: Any) -> str:
        return self._prefix + _sha256(json.dumps(key, separators=(",", ":"), default=str))

    def retry_after(self, key: Any) -> int:
        """Seconds to wait, or 0 when the key may try again."""
        now = self._now()
        k = self._redis_key(key)
        with self._link.guard():
            pipe = self._r.pipeline(transaction=True)
            pipe.zremrangebyscore(k, "-inf", f"({_num(now - self.window)}")
            pipe.zcard(k)
            pipe.zrange(k, 0, 0, withscores=True)
            _, count, oldest = pipe.execute()
        if count < self.limit or not oldest:
            return 0
        return max(1, int(self.window - (now - float(oldest[0][1]))) + 1)

    def record(self, key: Any) -> None:
        now = self._now()
        k = self._redis_key(key)
        with self._link.guard():
            pipe = self._r.pipeline(transaction=True)
            pipe.zadd(k, {f"{_num(now)}:{secrets.token_hex(4)}": now})
            pipe.zremrangebyscore(k, "-inf", f"({_num(now - self.window)}")
            pipe.pexpire(k, int(math.ceil(self.window * 1000)) + 1000)
            pipe.execute()

    def clear(self, key: Any) -> None:
        with self._link.guard():
            self._r.delete(self._redis_key(key))


class RedisSignInStore:
    """One Redis connection pool for a node's sign-in state (``SignIn(shared=...)``)."""

    def __init__(self, client: redis.Redis, namespace: str, box: CredentialBox, where: str = "redis") -> None:
        self.link = _Link(client, where)
        self.namespace = namespace
        self.box = box

    @staticmethod
    def client_for(url: str, password: str | None = None) -> redis.Redis:
        return redis.Redis.from_url(
            url,
            password=password or None,
            decode_responses=True,
            client_name="sightline-signin",
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1),
            health_check_interval=30,
        )

    @classmethod
    def connect(cls, config: GatewayConfig) -> RedisSignInStore:
        """Connects and checks the server answers; else SignInStoreUnreachable saying what to check."""
        assert config.redis_url
        where = safe_url(config.redis_url)
        client = cls.client_for(config.redis_url, os.environ.get(PASSWORD_ENV))
        try:
            client.ping()
        except redis.AuthenticationError as exc:
            client.close()
            raise SignInStoreUnreachable(
                f"{config.path}: [gateway] redis: {where} refused this node's credentials ({exc}); check the "
                f"{PASSWORD_ENV} environment variable (and the user name in the URL, if any)"
            ) from None
        except redis.RedisError as exc:
            client.close()
            raise SignInStoreUnreachable(
                f"{config.path}: [gateway] redis: cannot reach {where} ({type(exc).__name__}: {exc}); page sign-in "
                "sessions are kept there, so this node does not start without it. Check that Redis is running "
                "and reachable from this node (host, port, firewall; TLS for rediss://), that the URL is right, "
                f"and {PASSWORD_ENV} if it needs a password"
            ) from None
        return cls(client, namespace_for(config), CredentialBox.for_dir(config.secrets_dir), where)

    def sessions(self, *, idle_seconds: float = IDLE_SECONDS, lifetime: int = DEFAULT_TTL) -> RedisWebSessions:
        return RedisWebSessions(self.link, self.namespace, self.box, idle_seconds=idle_seconds, lifetime=lifetime)

    def limiter(self, name: str, limit: int, window: float) -> RedisFailureLimiter:
        return RedisFailureLimiter(self.link, self.namespace, name, limit, window)

    def close(self) -> None:
        try:
            self.link.client.close()
        except redis.RedisError:
            pass
