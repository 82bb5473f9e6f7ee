"""One RTSP session per camera stream across all nodes: ownership leases in Redis and a
node-to-node relay (used only with ``[gateway] redis``).

Cheap school cameras allow two to four RTSP sessions, so with several nodes only one of
them -- the lease holder -- pulls a camera stream; the others relay it from that node.

Lease: key ``sightline:<district id>:camera:<camera_id>:<stream>``, value the holder's
internal base URL (``[gateway] internal_url``, default ``public_url``). A node whose hub
needs the stream claims it with ``SET NX PX`` (ttl ``LEASE_TTL_MS``); the holder renews
it every ``RENEW_SECONDS`` while its hub's ingest runs and deletes it (compare-and-delete:
only if still its own) when the ingest stops. Every claim, renewal and release is one Lua
script, so a node never extends or deletes another node's lease.

Source choice (:class:`LeasedSource`, the hub's source when Redis is configured): claim
the lease; held by us → the normal source (RTSP/synthetic) plus renewal; held by another
node → a :class:`camera_adapters.relay.RelaySource` reading
``GET <holder>/internal/v1/relay/<camera_id>/<stream>``. The relay gives up as soon as
the lease no longer names that holder (checked before every reconnect and every second
while backing off); the next claim then finds it free and this node takes the camera
over. A node that dies stops renewing, so its lease expires within ``LEASE_TTL_MS``; a
node that shuts down cleanly deletes it at once.

Node-to-node authentication: the relay request carries ``X-Sightline-Node`` (the
requesting node) and ``X-Sightline-Signature`` (gateway/identity/signing.py's scheme, timestamp
inside the MAC, ``RELAY_TOLERANCE`` seconds either side) over
``"<METHOD>\\n<path>\\n<node>\\n<nonce>"`` (``X-Sightline-Nonce``, 32 random hex digits, each
accepted once: Redis remembers it past the window) with a key derived from the token
signing key in the shared ``<data_dir>/secrets``. The key is never logged or sent.

If Redis is unreachable the node ingests directly (video first) and keeps trying to
claim the lease; when it gets an answer naming another holder it switches to relaying.
A holder that gets no video from its camera for ``GIVE_UP_SECONDS`` (a network path only
some nodes have) while another node relays from it releases the lease and stands aside
``STAND_ASIDE_SECONDS``: another node may take the camera and this one relays from it; if
none does, it tries again. With nobody relaying, no node wants the camera but this one,
so it keeps retrying the camera itself and shows it as soon as it returns.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote

import redis

from camera_adapters.factory import make_source
from camera_adapters.relay import RelaySource
from camera_adapters.source import Source, SourceSink
from camera_adapters.units import AccessUnit
from gateway.identity import signing
from gateway.identity.tokens import load_or_create_key

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.config import GatewayConfig

log = logging.getLogger(__name__)

LEASE_TTL_MS = 10_000
RENEW_SECONDS = 3.0
RELAY_TOLERANCE = 30
NODE_HEADER = "X-Sightline-Node"
NONCE_HEADER = "X-Sightline-Nonce"
RELAY_PATH = "/internal/v1/relay/{camera_id}/{stream}"
JOIN_SECONDS = 6.0
# A holder that gets no video from the camera for this long gives the lease up and stands
# aside this long, so a node that can reach the camera takes it (and this one relays). Only
# while another node relays from it: with nobody to hand over to, standing aside would just
# keep the camera off screen up to STAND_ASIDE_SECONDS after it returns.
GIVE_UP_SECONDS = 20.0
STAND_ASIDE_SECONDS = 15.0
_KEY_LABEL = b"sightline node-to-node relay v1"

# Claim or renew: returns the holder after the call (ours if it was free or already ours).
_CLAIM = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return v
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return v
"""
# Delete only if still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def relay_key(secrets_dir: Path) -> bytes:
    """The node-to-node key: derived from the token signing key every node shares."""
    return hmac.new(load_or_create_key(secrets_dir), _KEY_LABEL, hashlib.sha256).digest()


def _signed_text(method: str, path: str, node: str, nonce: str) -> bytes:
    return f"{method.upper()}\n{path}\n{node}\n{nonce}".encode()


def relay_headers(
    key: bytes, method: str, path: str, node: str, now: float | None = None, nonce: str | None = None
) -> dict[str, str]:
    t = int(time.time() if now is None else now)
    nonce = nonce or secrets.token_hex(16)
    return {
        NODE_HEADER: node,
        NONCE_HEADER: nonce,
        signing.SIGNATURE_HEADER: signing.sign(key, _signed_text(method, path, node, nonce), t),
    }


def verify_relay(
    key: bytes, method: str, path: str, headers: Mapping[str, str], now: float | None = None
) -> tuple[str, str] | None:
    """(requesting node, nonce) if the request is signed with our key within the window."""
    node, nonce = headers.get(NODE_HEADER), headers.get(NONCE_HEADER)
    if not node or len(node) > 200 or not node.isprintable():
        return None
    if not nonce or len(nonce) != 32 or not all(c in "0123456789abcdef" for c in nonce):
        return None
    ok = signing.verify(
        key,
        _signed_text(method, path, node, nonce),
        headers.get(signing.SIGNATURE_HEADER),
        time.time() if now is None else now,
        tolerance=RELAY_TOLERANCE,
    )
    return (node, nonce) if ok else None


class CameraLeases:
    """This node's view of the camera leases, and the key its relay requests are signed with."""

    def __init__(
        self,
        client: redis.Redis,
        namespace: str,
        internal_url: str,
        node: str,
        key: bytes,
        *,
        ttl_ms: int = LEASE_TTL_MS,
        renew_seconds: float = RENEW_SECONDS,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.me = internal_url.rstrip("/")
        self.node = node
        self._key = key
        self.ttl_ms = ttl_ms
        self.renew_seconds = renew_seconds
        self._claim = client.register_script(_CLAIM)
        self._release = client.register_script(_RELEASE)
        self._owned: set[tuple[str, str]] = set()
        self._relays: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_config(cls, config: GatewayConfig) -> CameraLeases:
        from gateway.identity.signin_redis import PASSWORD_ENV, RedisSignInStore, namespace_for

        assert config.redis_url
        client = RedisSignInStore.client_for(config.redis_url, os.environ.get(PASSWORD_ENV))
        return cls(
            client,
            namespace_for(config),
            config.internal_url or config.public_url,
            config.node,
            relay_key(config.secrets_dir),
        )

    def lease_key(self, camera_id: str, stream: str) -> str:
        return f"{self.namespace}:camera:{camera_id}:{stream}"

    def claim(self, camera_id: str, stream: str) -> str:
        """Take or renew the lease; returns its holder afterwards (``self.me`` if ours).
        Raises redis.RedisError when Redis cannot be reached."""
        return str(self._claim(keys=[self.lease_key(camera_id, stream)], args=[self.me, self.ttl_ms]))

    def holder(self, camera_id: str, stream: str) -> str | None:
        value = self.client.get(self.lease_key(camera_id, stream))
        return value.decode() if isinstance(value, bytes) else value

    def release(self, camera_id: str, stream: str) -> None:
        try:
            self._release(keys=[self.lease_key(camera_id, stream)], args=[self.me])
        except redis.RedisError as exc:
            log.warning(
                "camera %s/%s: could not release the lease (%s); it expires in %g s",
                camera_id,
                stream,
                exc,
                self.ttl_ms / 1000,
            )

    def set_owned(self, camera_id: str, stream: str, owned: bool) -> None:
        with self._lock:
            (self._owned.add if owned else self._owned.discard)((camera_id, stream))

    def owns(self, camera_id: str, stream: str) -> bool:
        """True while this node ingests the stream itself (a relay may be served from it)."""
        with self._lock:
            return (camera_id, stream) in self._owned

    def relay_served(self, camera_id: str, stream: str, delta: int) -> None:
        """The relay endpoint counts the nodes it serves the stream to (+1 / -1)."""
        key = (camera_id, stream)
        with self._lock:
            count = self._relays.get(key, 0) + delta
            if count > 0:
                self._relays[key] = count
            else:
                self._relays.pop(key, None)

    def relayed(self, camera_id: str, stream: str) -> bool:
        """True while another node relays the stream from this one (it wants the camera too)."""
        with self._lock:
            return self._relays.get((camera_id, stream), 0) > 0

    def relay_url(self, holder: str, camera_id: str, stream: str) -> tuple[str, str]:
        path = RELAY_PATH.format(camera_id=quote(camera_id, safe=""), stream=quote(stream, safe=""))
        return holder.rstrip("/") + path, path

    def headers_for(self, path: str) -> dict[str, str]:
        return relay_headers(self._key, "GET", path, self.node)

    def authenticate(self, method: str, path: str, headers: Mapping[str, str]) -> str | None:
        """The requesting node's name, or None: not signed with our key, outside the time
        window, or a replay (each nonce is accepted once; Redis remembers it past the window).
        Blocking (one Redis call)."""
        verified = verify_relay(self._key, method, path, headers)
        if verified is None:
            return None
        node, nonce = verified
        try:
            fresh = self.client.set(
                f"{self.namespace}:relay-nonce:{nonce}", node, nx=True, px=(2 * RELAY_TOLERANCE + 5) * 1000
            )
        except redis.RedisError as exc:
            log.warning("relay request from node %s refused: cannot check for a replay (%s)", node, exc)
            return None
        return node if fresh else None

    def source_factory(self) -> Callable[[str, str, str, SourceSink], Source]:
        def make(camera_id: str, stream: str, url: str, sink: SourceSink) -> Source:
            return LeasedSource(camera_id, stream, url, sink, self)

        return make

    def close(self) -> None:
        try:
            self.client.close()
        except redis.RedisError:
            pass


class _InnerSink:
    """Forwards an inner source's output, except the "stopped" it reports when we stop it;
    remembers when the last unit came."""

    def __init__(self, sink: SourceSink) -> None:
        self._sink = sink
        self.last_unit = time.monotonic()

    def on_unit(self, unit: AccessUnit) -> None:
        self.last_unit = time.monotonic()
        self._sink.on_unit(unit)

    def on_state(self, state: str, detail: str = "") -> None:
        if state != "stopped":
            self._sink.on_state(state, detail)


class LeasedSource(Source):
    """The camera itself while this node holds the lease, else a relay from the holder."""

    def __init__(
        self,
        camera_id: str,
        stream: str,
        url: str,
        sink: SourceSink,
        leases: CameraLeases,
        make_inner: Callable[[str, SourceSink], Source] = make_source,
    ) -> None:
        super().__init__(url, sink)
        self.camera_id, self.stream = camera_id, stream
        self._leases = leases
        self._make_inner = make_inner
        self._inner: Source | None = None
        self._inner_lock = threading.Lock()
        self._ingest = "pending"
        self._aside_until = 0.0
        self.takeovers = 0

    @property
    def ingest(self) -> str:
        inner = self._inner
        return inner.ingest if inner is not None else self._ingest

    def stop(self) -> None:
        super().stop()
        with self._inner_lock:
            if self._inner is not None:
                self._inner.stop()

    def set_needed(self, needed: bool) -> None:
        """The inner source (camera or relay) is what backs off, so it must know too."""
        with self._inner_lock:
            super().set_needed(needed)
            if self._inner is not None:
                self._inner.set_needed(needed)

    def _set_inner(self, inner: Source | None) -> bool:
        with self._inner_lock:
            self._inner = inner
            if inner is not None:
                inner.set_needed(self.needed)
            if inner is not None and self.stopping:
                inner.stop()
                return False
            return True

    def run(self) -> None:
        first = True
        while not self.stopping:
            if time.monotonic() < self._aside_until:
                # gave the camera up: relay from whoever took it, or wait and try again
                try:
                    holder = self._leases.holder(self.camera_id, self.stream)
                except redis.RedisError:
                    holder = None
                if holder and holder != self._leases.me:
                    self._relay(holder)
                else:
                    self.sleep(1.0)
                continue
            try:
                holder = self._leases.claim(self.camera_id, self.stream)
            except redis.RedisError as exc:
                log.warning(
                    "camera %s/%s: lease unavailable (%s); ingesting directly", self.camera_id, self.stream, exc
                )
                holder = self._leases.me
            if holder == self._leases.me:
                if not first:
                    self.takeovers += 1
                    log.info("camera %s/%s: took over the camera", self.camera_id, self.stream)
                self._own()
            else:
                self._relay(holder)
            first = False
            if not self.stopping:
                self.sleep(0.2)  # between modes: never spin

    def _own(self) -> None:
        sink = _InnerSink(self.sink)
        inner = self._make_inner(self.url, sink)
        if not self._set_inner(inner):
            return
        self._leases.set_owned(self.camera_id, self.stream, True)
        lost = False
        inner.start()
        try:
            while not self.sleep(self._leases.renew_seconds):
                silent = time.monotonic() - sink.last_unit > GIVE_UP_SECONDS
                if silent and self._leases.relayed(self.camera_id, self.stream):
                    log.warning(
                        "camera %s/%s: no video from the camera for %.0f s; giving the lease up "
                        "so a node that can reach it takes over",
                        self.camera_id,
                        self.stream,
                        GIVE_UP_SECONDS,
                    )
                    self._aside_until = time.monotonic() + STAND_ASIDE_SECONDS
                    return
                try:
                    holder = self._leases.claim(self.camera_id, self.stream)
                except redis.RedisError as exc:
                    log.warning(
                        "camera %s/%s: cannot renew the lease (%s); still ingesting", self.camera_id, self.stream, exc
                    )
                    continue
                if holder != self._leases.me:
                    log.warning(
                        "camera %s/%s: the lease went to %s; relaying from there", self.camera_id, self.stream, holder
                    )
                    lost = True
                    return
        finally:
            self._leases.set_owned(self.camera_id, self.stream, False)
            inner.stop()
            inner.join(JOIN_SECONDS)
            self._set_inner(None)
            if not lost:
                self._leases.release(self.camera_id, self.stream)

    def _relay(self, holder: str) -> None:
        url, path = self._leases.relay_url(holder, self.camera_id, self.stream)

        def keep_going() -> bool:
            try:
                return self._leases.holder(self.camera_id, self.stream) == holder
            except redis.RedisError:
                return True  # cannot tell: keep trying the node we know

        relay = RelaySource(
            url,
            _InnerSink(self.sink),
            headers=lambda: self._leases.headers_for(path),
            keep_going=keep_going,
            peer=holder,
        )
        if not self._set_inner(relay):
            return
        try:
            relay.run()  # in this thread; returns when stopped or when the holder changed
        finally:
            self._set_inner(None)
