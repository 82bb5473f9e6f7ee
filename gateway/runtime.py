"""The running gateway: builds the domain and media layers from a site file and wires
domain events to the session registry.

This is the one place that knows both sides: ``emergency`` decides, ``camera_adapters``
moves video, and the wiring here turns a grant that ended into closed sessions.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from camera_adapters import MediaHubs, SenderChoice, install_aiortc_patch
from camera_adapters.registry import CameraConnection
from emergency.audit import AuditEvent, AuditLog
from emergency.audit.checkpoints import CheckpointSigner, TrustedKeys
from emergency.audit.mirror import open_mirror
from emergency.audit.witness import WITNESS_FILE, open_witness
from emergency.clock import Clock, SystemClock
from emergency.events import GrantEnded, GrantRescoped, GrantStarted
from emergency.guest_passes import GuestPasses
from emergency.live_views import LiveViews
from emergency.model import Grant
from emergency.outbox import Outbox
from emergency.receipts import Receipts
from emergency.records import PrivacyHoldChanged, RecordsService
from emergency.requests import AccessRequests
from emergency.service import EmergencyService
from emergency.sign_ins import SignIns
from emergency.site import Account
from emergency.sql_store import SqlStore
from emergency.sqlite_store import SqliteStore
from emergency.store import SignInRepo
from gateway.bus import InProcessBus
from gateway.config import GatewayConfig
from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.guests import guest_account
from gateway.identity.oidc import RelyingParty
from gateway.identity.people import People, register_people
from gateway.identity.tokens import TokenAuthority, load_or_create_key
from gateway.media.sessions import SessionRegistry
from gateway.metrics import Metrics
from gateway.notifier import Notifier, webhook_subscribers

log = logging.getLogger(__name__)

TICK_SECONDS = 0.2
# Why a live view session was closed, as the viewer's page shows it.
CLOSED_OUT_OF_SCOPE = "camera left the emergency's scope"
CLOSED_HELD = "privacy hold: a time-out or restraint is in progress where this camera looks"


def open_store(config: GatewayConfig) -> SqlStore:
    """PostgreSQL when ``[gateway] database`` names one, else SQLite in the data dir."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if config.database_url:
        from emergency.pg_store import PgStore  # psycopg is only needed for this option

        return PgStore(config.database_url)
    return SqliteStore(config.database)


def open_domain(config: GatewayConfig, clock: Clock | None = None) -> tuple[SqlStore, AuditLog, EmergencyService]:
    """The domain alone, for CLI commands that need no media or HTTP."""
    clock = clock or SystemClock()
    store = open_store(config)
    audit = open_audit(config, store, clock)
    outbox = Outbox(store, clock, webhook_subscribers(config.webhooks))
    return store, audit, EmergencyService(config.site, store, audit, clock, outbox=outbox)


def open_audit(config: GatewayConfig, store: SqlStore, clock: Clock) -> AuditLog:
    """The audit log with this node's checkpoint key, the keys it trusts, the mirror and the witness."""
    signer = CheckpointSigner.load_or_create(config.secrets_dir, config.node)
    return AuditLog(
        store,
        clock,
        config.node,
        signer=signer,
        trusted=TrustedKeys.for_node(config.secrets_dir, signer),
        mirror=open_mirror(config.audit_mirror),
        witness=open_witness(config.audit_witness, config.secrets_dir / WITNESS_FILE),
        checkpoint_every=config.audit_checkpoint_every,
        checkpoint_interval=config.audit_checkpoint_seconds,
    )


def camera_connections(config: GatewayConfig) -> dict[str, CameraConnection]:
    """Every camera's connection with its password opened. A password that cannot be
    opened leaves that camera without credentials (its health will show the refusal)
    rather than keeping the whole gateway down."""
    box = CredentialBox.for_dir(config.secrets_dir)
    connections = {}
    for camera in config.site.cameras.values():
        access = config.access.get(camera.id)
        password = None
        if access and access.sealed_password:
            try:
                password = box.open(access.sealed_password)
            except CredentialError as exc:
                log.error("camera %s: %s", camera.id, exc)
        connections[camera.id] = CameraConnection(
            camera_id=camera.id,
            main=camera.main,
            sub=camera.sub,
            username=access.username if access else None,
            password=password,
            onvif=access.onvif if access else None,
            snapshot_uri=access.snapshot_uri if access else None,
        )
    return connections


def token_authority(
    config: GatewayConfig, store: SignInRepo | None = None, clock: Clock | None = None
) -> TokenAuthority:
    """The node's token authority; with ``store``, every token it issues is recorded as a
    sign-in there and refused once that sign-in has ended (emergency/sign_ins.py)."""
    sign_ins = SignIns(store, clock or SystemClock()) if store is not None else None
    return TokenAuthority(load_or_create_key(config.secrets_dir), config.site, sign_ins=sign_ins)


class Gateway:
    def __init__(self, config: GatewayConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.store, self.audit, self.emergencies = open_domain(config, self.clock)
        self.bus = InProcessBus()
        self.emergencies.add_listener(self.bus.publish)
        self.bus.subscribe(self._on_domain_event)
        self.tokens = token_authority(config, self.store, self.clock)
        assert self.tokens.sign_ins is not None
        self.sign_ins = self.tokens.sign_ins
        self._watcher: asyncio.Task[None] | None = None
        # people who sign in through their agency's provider (gateway/identity/oidc.py, people.py)
        register_people(self.tokens.directory, self.store, config.oidc)
        self.people = People(self.store, self.audit, self.clock)
        self.oidc = RelyingParty(config.oidc, CredentialBox.for_dir(config.secrets_dir), config.public_url)
        # which sessions this node serves, with its heartbeat: a crash leaves no span open-ended
        self.live_views = LiveViews(self.store, self.audit, self.clock, config.node)
        self.sessions = SessionRegistry(self.live_views, self.clock)
        # With Redis, one node per camera stream pulls the camera and the others relay from it.
        self.leases = None
        if config.redis_url:
            from gateway.media.camera_leases import CameraLeases

            self.leases = CameraLeases.for_config(config)
        self.relay_tracks: set = set()  # viewer tracks of relay connections this node serves
        self.relay_closing = False
        self.rtp_sender: SenderChoice | None = None  # set by start()
        self.media = MediaHubs(
            idle_timeout=config.idle_timeout, source_factory=self.leases.source_factory() if self.leases else None
        )
        self.metrics = Metrics(camera_stats=self.media.all_stats)
        self.cameras = camera_connections(config)
        for connection in self.cameras.values():
            for stream in ("main", "sub"):
                url = connection.url(stream)
                if url:
                    self.media.register(connection.camera_id, stream, url)
        self._ticker: asyncio.Task[None] | None = None
        self._live_scope: frozenset[tuple[str, tuple[str, ...]]] = frozenset()
        outbox = self.emergencies.outbox
        assert outbox is not None, "open_domain gives the service its outbox"
        self.outbox = outbox
        self.requests = AccessRequests(config.site, self.store, self.audit, self.clock, self.emergencies)
        self.records = RecordsService(config.site, self.store, self.audit, self.clock, self.emergencies)
        self.receipts = Receipts(self.store, self.clock)
        self.emergencies.held_cameras = self.records.held_cameras
        self.guest_passes = GuestPasses(
            self.store,
            self.audit,
            self.clock,
            self.emergencies,
            link_for=lambda secret: f"{config.public_url.rstrip('/')}/guest/{secret}",
            outbox=self.outbox,
        )
        self.tokens.directory.register("guest", self._guest_account)
        self.records.add_listener(self.bus.publish)
        self.notifier = Notifier(
            self.outbox,
            config.webhooks,
            CredentialBox.for_dir(config.secrets_dir),
            clock=self.clock,
            audit=self.audit,
            metrics=self.metrics,
        )

    def _guest_account(self, account_id: str) -> Account | None:
        """``guest:{pass}``: the responder of a used guest pass, while its emergency shares video."""
        p = self.guest_passes.in_force(account_id.partition(":")[2])
        return guest_account(p) if p is not None else None

    async def start(self) -> None:
        """Apply whatever the clock says happened while we were down, then keep ticking."""
        self.rtp_sender = install_aiortc_patch()  # before any viewer's sender exists
        (log.info if self.rtp_sender.lean else log.warning)("[gateway] %s", self.rtp_sender.message)
        self.bus.bind(asyncio.get_running_loop())
        self._close_crashed_sessions()
        self.records.refresh_holds()
        await self._enforce_store()  # applies the clock, starts the preloads
        self.audit.append(AuditEvent.GATEWAY_STARTED, actor_id="system", object=f"node:{self.config.node}")
        self._audit_config()
        self._ticker = asyncio.create_task(self._tick_forever(), name="sightline-ticker")
        await self.notifier.start()
        if self.leases is not None and not self.config.internal_url:
            log.warning(
                "[gateway] redis is set but internal_url is not: other nodes will relay cameras from "
                "public_url (%s); set internal_url to this node's own address",
                self.config.public_url,
            )

    def _close_crashed_sessions(self) -> None:
        """The sessions this node served when it last died without stopping (``kill -9``,
        power loss) are closed in the audit log, ended at its last heartbeat."""
        closed = sum(e.event_type == AuditEvent.VIEW_ENDED for e in self.live_views.close_orphans())
        if closed:
            log.warning(
                "[gateway] node %s had stopped unexpectedly: closed %d view session(s) it left open, "
                "ended at its last heartbeat",
                self.config.node,
                closed,
            )

    def begin_shutdown(self) -> None:
        """End the relay streams this node serves, so the HTTP server can drain (they
        would otherwise run as long as the other nodes read) and the readers move on."""
        self.relay_closing = True
        for track in list(self.relay_tracks):
            track.stop()

    def _audit_config(self) -> None:
        """Record the site file this node runs on. Policy and configuration are changed by
        editing that file, so a changed digest since the last start is itself recorded
        as ``config.changed`` (with the policy versions) for the auditor to see."""
        text = self.config.path.read_bytes()
        digest = hashlib.sha256(text).hexdigest()
        policy = self.config.site.policy.version
        previous = None
        for entry in self.audit.latest(AuditEvent.CONFIG_LOADED, limit=1):
            previous = entry
        details = {
            "site_file": str(self.config.path),
            "sha256": digest,
            "policy_version": policy,
            "cameras": len(self.config.site.cameras),
            "accounts": len(self.config.site.accounts),
        }
        self.audit.append(
            AuditEvent.CONFIG_LOADED, actor_id="system", object=f"node:{self.config.node}", details=details
        )
        if previous is not None and previous.details.get("sha256") != digest:
            self.audit.append(
                AuditEvent.CONFIG_CHANGED,
                actor_id="system",
                object=f"node:{self.config.node}",
                reason="the site file differs from the one loaded at the previous start",
                details={
                    **details,
                    "previous_sha256": previous.details.get("sha256"),
                    "previous_policy_version": previous.details.get("policy_version"),
                },
            )

    async def stop(self) -> None:
        self.begin_shutdown()
        if self._ticker:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.sessions.close_all("gateway shutting down")
        await self.bus.drain()
        await self.media.close()  # owned camera leases are released as their ingest stops
        if self.leases is not None:
            self.leases.close()
        await self.notifier.stop()
        self.audit.append(AuditEvent.GATEWAY_STOPPED, actor_id="system", object=f"node:{self.config.node}")
        self.audit.close()
        self.store.close()

    async def _tick_forever(self) -> None:
        while True:
            try:
                self.records.refresh_holds()
                await self._enforce_store()  # live_grants() applies the clock (emergencies.tick)
            except Exception:
                log.exception("emergency tick failed; retrying")
            try:
                await self.close_ended_sign_ins()
            except Exception:
                log.exception("sign-in watch failed; retrying")
            try:
                self.guest_passes.tick()  # unused passes expire, passes of ended emergencies end (audited)
            except Exception:
                log.exception("guest pass tick failed; retrying")
            try:
                self.live_views.beat_if_due()
            except Exception:
                log.exception("heartbeat failed; retrying")
            try:
                self.audit.tick()  # a checkpoint at least every audit_checkpoint_seconds; mirror catch-up
            except Exception:
                log.exception("audit tick failed; retrying")
            await asyncio.sleep(TICK_SECONDS)

    async def _enforce_store(self) -> None:
        """The one rule for live sessions: close those the stored grants and holds no longer
        allow, and follow grant changes with the preloads. Run at once on a domain event
        (the node that made the change) and every tick (every node sharing the database,
        and anything an event missed)."""
        grants = self.emergencies.live_grants()
        scope = frozenset((g.id, tuple(sorted(g.camera_ids))) for g in grants)
        if scope != self._live_scope:
            self._live_scope = scope
            self._sync_preload(grants)
        if not len(self.sessions):
            return
        live = {g.id: g for g in grants}
        held = self.emergencies.held_cameras(self.clock.now())
        reasons: dict[str, str] = {}
        for session in self.sessions.all():
            grant = live.get(session.grant_id)
            if grant is None:
                stored = self.emergencies.stored_grant(session.grant_id)
                reasons[session.id] = f"grant ended: {stored.end_reason if stored and stored.end_reason else 'expired'}"
            elif session.camera_id not in grant.camera_ids:
                reasons[session.id] = CLOSED_OUT_OF_SCOPE
            elif session.camera_id in held:
                reasons[session.id] = CLOSED_HELD
        if reasons:
            closed = sum(await asyncio.gather(*(self.sessions.close(i, why) for i, why in reasons.items())))
            self.metrics.sessions_revoked.inc(closed)
            self.metrics.view_sessions.set(len(self.sessions))

    async def close_ended_sign_ins(self) -> int:
        """Close the video whose sign-in has ended (signed out, locked, revoked on any node)
        or expired without renewal. One read per tick while this node serves video, so a
        revocation cuts video within ``TICK_SECONDS`` plus the time to close it."""
        ids = sorted({s.sign_in for s in self.sessions.all() if s.sign_in})
        if not ids:
            return 0
        found = self.sign_ins.statuses(ids)
        now = self.sign_ins.now()
        reasons: dict[str, str] = {}
        for session in self.sessions.all():
            if not session.sign_in:
                continue
            record = found.get(session.sign_in)
            why = record.why_not_live(now) if record is not None else "the sign-in is unknown"
            if why is not None:
                reasons[session.id] = why
        if not reasons:
            return 0
        closed = sum(await asyncio.gather(*(self.sessions.close(i, why) for i, why in reasons.items())))
        self.metrics.sessions_revoked.inc(closed)
        self.metrics.view_sessions.set(len(self.sessions))
        return closed

    def _sync_preload(self, grants: list[Grant]) -> None:
        """Keep the grid stream (sub, else main) of every camera under a live grant
        ingesting, and only those: an officer's grid then starts at cached keyframes
        instead of cold connects. The main stream starts when someone focuses a camera."""
        wanted = {
            (camera_id, self.media.streams(camera_id)[-1])
            for grant in grants
            for camera_id in grant.camera_ids
            if self.media.streams(camera_id)
        }
        for key in self.media.preloaded() - wanted:
            self.media.release(*key)
        for key in wanted - self.media.preloaded():
            self.media.preload(*key)

    async def _on_domain_event(self, event: object) -> None:
        if isinstance(event, (GrantStarted, GrantEnded, GrantRescoped, PrivacyHoldChanged)):
            await self._enforce_store()  # at once on this node; the ticker does it on the others
