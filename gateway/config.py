"""The site file: the district's site model plus the gateway's own settings.

A single TOML file describes a deployment. Everything except the ``[gateway]`` table is
the district's site model and is handed to :func:`emergency.site.load_site`; the
``[gateway]`` table holds where this node keeps its data and what it calls itself.
"""

from __future__ import annotations

import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from emergency.model import Action, IncidentType
from emergency.outbox import ALL_TOPICS, PRIVATE_TOPICS, TOPICS
from emergency.site import Site, SiteError, load_site
from gateway.api.floor_plans import FloorPlan, FloorPlanError, locate
from gateway.identity.logins import AccountLogin, LoginConfigError, pop_account_logins
from gateway.identity.oidc_config import OidcConfigError, OidcProvider, pop_oidc, read_oidc
from gateway.identity.proxies import Network, parse_networks
from gateway.media.ice import DEFAULT_TTL as ICE_DEFAULT_TTL
from gateway.media.ice import MAX_TTL as ICE_MAX_TTL
from gateway.media.ice import IceConfigError, IceServer, parse_ice_servers
from gateway.tls import TlsConfigError, TlsFiles, parse_tls

_GATEWAY_KEYS = {
    "data_dir",
    "node",
    "idle_timeout_seconds",
    "public_url",
    "database",
    "audit_mirror",
    "audit_witness",
    "audit_checkpoint_every",
    "audit_checkpoint_seconds",
    "ice_servers",
    "ice_credential_ttl_seconds",
    "redis",
    "internal_url",
    "trusted_proxies",
    "tls_cert",
    "tls_key",
}
_DATABASE_SCHEMES = ("postgresql", "postgres")
_REDIS_SCHEMES = ("redis", "rediss")

# Keys of a [[cameras]] entry that say how to reach the camera rather than what it is;
# they stay in the gateway and camera_adapters and never reach the domain.
CONNECTION_KEYS = ("username", "password", "onvif", "snapshot")

# A records_client account's OAuth2 client secret ([[accounts]] entry); kept out of the domain.
CLIENT_SECRET_KEY = "client_secret"


@dataclass(frozen=True)
class CameraAccess:
    """A camera's connection settings as stored: the password still sealed."""

    username: str | None = None
    sealed_password: str | None = field(default=None, repr=False)
    onvif: str | None = None
    snapshot_uri: str | None = None


# Keys of a [[webhooks]] entry: a notification subscriber (police dispatch/CAD, board
# attorney, communications lead). The whole list stays in the gateway.
WEBHOOK_KEYS = frozenset({"id", "url", "topics", "secret"})
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class WebhookConfig:
    """A notification subscriber as stored: the signing secret still sealed."""

    id: str
    url: str
    topics: frozenset[str]
    sealed_secret: str = field(repr=False)

    def wants(self, topic: str) -> bool:
        """A private topic (a guest pass link to text) only when named, never through "*"."""
        return topic in self.topics or (ALL_TOPICS in self.topics and topic not in PRIVATE_TOPICS)


PANIC_KEYS = frozenset({"id", "building", "action", "incident_type", "secret"})


@dataclass(frozen=True)
class PanicButton:
    """A hardware panic button and what the policy maps it to; its HMAC secret still sealed."""

    id: str
    building: str
    action: Action
    incident_type: IncidentType
    sealed_secret: str = field(repr=False)


class ConfigError(ValueError):
    """The site file cannot be used; the message says which key and why."""


@dataclass(frozen=True)
class GatewayConfig:
    path: Path
    data_dir: Path
    node: str
    idle_timeout: float
    public_url: str
    site: Site
    access: dict[str, CameraAccess]
    webhooks: tuple[WebhookConfig, ...] = ()
    panic_buttons: dict[str, PanicButton] = field(default_factory=dict)
    logins: dict[str, AccountLogin] = field(default_factory=dict)  # sign-in credentials, by account id
    # [gateway] database: a postgresql:// URL; None keeps the embedded SQLite file below.
    database_url: str | None = None
    # OAuth2 client secrets of records_client accounts, by account id, as stored: an scrypt
    # hash (preferred) or a sealed secret; never plain text (gateway/identity/oauth.py checks them).
    client_secrets: dict[str, str] = field(default_factory=dict, repr=False)
    # The audit log's second sink ("file:PATH" relative to the site file, "syslog:",
    # "syslog:HOST:PORT"). The checkpoint cadence keys are still read (release-0.1 site
    # files have them) but change nothing: every commit batch is signed now.
    audit_mirror: str | None = None
    # Where every signed checkpoint is also written ("file:PATH", relative to the site
    # file; emergency/audit/witness.py); None: secrets/audit-witness.jsonl in the data dir.
    audit_witness: str | None = None
    audit_checkpoint_every: int = 1000
    audit_checkpoint_seconds: float = 60.0
    # Floor plan images by building id (``floor_plan`` on [[buildings]]), checked at load.
    floor_plans: dict[str, FloorPlan] = field(default_factory=dict)
    # STUN/TURN servers for viewers ([[gateway.ice_servers]]) and how long the TURN
    # credentials handed to a viewer stay valid.
    ice_servers: tuple[IceServer, ...] = ()
    ice_credential_ttl: int = ICE_DEFAULT_TTL
    # [gateway] redis: a redis:// or rediss:// URL (no password; REDIS_PASSWORD gives it) where
    # several nodes share page sign-in sessions and failure limits (gateway/identity/signin_redis.py);
    # None keeps them in this process's memory.
    redis_url: str | None = None
    # [gateway] internal_url: how the other nodes reach this one (camera relays,
    # gateway/media/camera_leases.py); None means public_url. Set it per node behind a load balancer.
    internal_url: str | None = None
    # [gateway] trusted_proxies: the reverse proxies whose X-Forwarded-For is believed
    # (gateway/identity/proxies.py); none by default, so the TCP peer is the source.
    trusted_proxies: tuple[Network, ...] = ()
    # [gateway] tls_cert and tls_key (gateway/tls.py): this node serves HTTPS, sends HSTS and
    # marks its cookies Secure; None serves plain HTTP (e.g. behind a TLS-terminating proxy).
    tls: TlsFiles | None = None
    # OpenID Connect providers by agency id (or the district's id): ``oidc`` on [[agencies]]
    # or [district] (gateway/identity/oidc_config.py); the client secrets still sealed.
    oidc: dict[str, OidcProvider] = field(default_factory=dict)

    @property
    def database(self) -> Path:
        """The embedded SQLite database (used when ``database_url`` is None)."""
        return self.data_dir / "sightline.db"

    @property
    def secrets_dir(self) -> Path:
        return self.data_dir / "secrets"


def load_config(path: str | Path) -> GatewayConfig:
    path = Path(path).resolve()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such site file (run 'sightline demo' to write a sample)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    gateway = raw.pop("gateway", {})
    unknown = set(gateway) - _GATEWAY_KEYS
    if unknown:
        raise ConfigError(f"{path}: [gateway] has unknown keys {sorted(unknown)}; known: {sorted(_GATEWAY_KEYS)}")
    access = _pop_camera_access(raw, path)
    try:
        logins = pop_account_logins(raw, path)
    except LoginConfigError as exc:
        raise ConfigError(str(exc)) from None
    webhooks = _pop_webhooks(raw, path)
    client_secrets = _pop_client_secrets(raw, path)
    panic_entries = raw.pop("panic_buttons", [])
    oidc_entries = pop_oidc(raw, path)
    try:
        site = load_site(raw)
    except SiteError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        oidc = read_oidc(oidc_entries, site)
    except OidcConfigError as exc:
        raise ConfigError(str(exc)) from None
    for ident in client_secrets:
        if site.accounts[ident].role != "records_client":
            raise ConfigError(f"{path}: account {ident!r} has a client_secret but is not a records_client")
    panic_buttons = _panic_buttons(panic_entries, site, path)
    floor_plans = _floor_plans(site, path)
    data_dir = (path.parent / gateway.get("data_dir", ".")).resolve()
    audit_mirror, every, seconds = _audit_settings(gateway, path)
    ice_servers, ice_ttl = _ice_settings(gateway, path)
    try:
        tls = parse_tls(gateway.get("tls_cert"), gateway.get("tls_key"), path.parent, f"{path}: [gateway]")
    except TlsConfigError as exc:
        raise ConfigError(str(exc)) from None
    return GatewayConfig(
        path=path,
        data_dir=data_dir,
        node=str(gateway.get("node") or socket.gethostname()),
        idle_timeout=float(gateway.get("idle_timeout_seconds", 10.0)),
        public_url=str(gateway.get("public_url") or ("https" if tls else "http") + "://127.0.0.1:8000"),
        site=site,
        access=access,
        webhooks=webhooks,
        panic_buttons=panic_buttons,
        logins=logins,
        database_url=_database_url(gateway.get("database"), path),
        audit_mirror=audit_mirror,
        audit_witness=_audit_witness(gateway.get("audit_witness"), path),
        audit_checkpoint_every=every,
        audit_checkpoint_seconds=seconds,
        client_secrets=client_secrets,
        floor_plans=floor_plans,
        ice_servers=ice_servers,
        ice_credential_ttl=ice_ttl,
        redis_url=_redis_url(gateway.get("redis"), path),
        internal_url=_internal_url(gateway.get("internal_url"), path),
        trusted_proxies=_trusted_proxies(gateway.get("trusted_proxies"), path),
        tls=tls,
        oidc=oidc,
    )


def _trusted_proxies(value: object, path: Path) -> tuple[Network, ...]:
    try:
        return parse_networks(value, f"{path}: [gateway] trusted_proxies")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def rewrite_site_file(config: GatewayConfig, text: str) -> GatewayConfig:
    """Replaces the site file's text and re-reads it; puts the old text back (and raises
    ConfigError) if the new one does not load, so a CLI edit never leaves a broken site."""
    original = config.path.read_text(encoding="utf-8")
    config.path.write_text(text, encoding="utf-8")
    try:
        return load_config(config.path)
    except ConfigError:
        config.path.write_text(original, encoding="utf-8")
        raise


def _ice_settings(gateway: dict, path: Path) -> tuple[tuple[IceServer, ...], int]:
    try:
        servers = parse_ice_servers(gateway.get("ice_servers"), f"{path}: [gateway]")
    except IceConfigError as exc:
        raise ConfigError(str(exc)) from None
    ttl = gateway.get("ice_credential_ttl_seconds", ICE_DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= ICE_MAX_TTL:
        raise ConfigError(
            f"{path}: [gateway] ice_credential_ttl_seconds must be whole seconds from 60 to {ICE_MAX_TTL}"
        )
    return servers, ttl


def _floor_plans(site: Site, path: Path) -> dict[str, FloorPlan]:
    """Each building's ``floor_plan`` file: inside the site file's folder, an image, <= 5 MB."""
    plans: dict[str, FloorPlan] = {}
    for i, building in enumerate(site.buildings.values()):
        if building.floor_plan is None:
            continue
        try:
            plans[building.id] = locate(path.parent, building.floor_plan, building.id)
        except FloorPlanError as exc:
            raise ConfigError(f"{path}: buildings[{i}].floor_plan: building {building.id!r}: {exc}") from None
    return plans


def _pop_client_secrets(raw: dict, path: Path) -> dict[str, str]:
    """Take ``client_secret`` off every ``[[accounts]]`` entry before the domain sees it.
    Stored as ``scrypt$...`` (``sightline client-secret`` prints one) or sealed
    (``enc:v1:...``, CredentialBox); plain text is refused, like camera passwords."""
    from gateway.identity.logins import check_password_hash

    secrets: dict[str, str] = {}
    accounts = raw.get("accounts", [])
    if not isinstance(accounts, list):
        return secrets  # load_site names the problem
    for i, entry in enumerate(accounts):
        if not isinstance(entry, dict) or CLIENT_SECRET_KEY not in entry:
            continue
        value = entry.pop(CLIENT_SECRET_KEY)
        where = f"{path}: accounts[{i}].{CLIENT_SECRET_KEY}"
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a non-empty string")
        if value.startswith("scrypt$"):
            try:
                check_password_hash(value)
            except LoginConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        elif not value.startswith("enc:"):
            raise ConfigError(
                f"{where} is stored in plain text; replace it with the scrypt hash that "
                "'sightline client-secret' prints (or a sealed secret)"
            )
        if isinstance(entry.get("id"), str):
            secrets[entry["id"]] = value
    return secrets


def _audit_settings(gateway: dict, path: Path) -> tuple[str | None, int, float]:
    mirror = gateway.get("audit_mirror")
    if mirror is not None:
        kind, _, rest = mirror.partition(":") if isinstance(mirror, str) else ("", "", "")
        if not (kind == "file" and rest) and kind != "syslog":
            raise ConfigError(
                f'{path}: [gateway] audit_mirror must be "file:PATH", "syslog:" or "syslog:HOST:PORT", not {mirror!r}'
            )
        if kind == "file":
            mirror = f"file:{(path.parent / rest).resolve()}"
    every = gateway.get("audit_checkpoint_every", 1000)
    seconds = gateway.get("audit_checkpoint_seconds", 60)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise ConfigError(f"{path}: [gateway] audit_checkpoint_every must be a whole number >= 1")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        raise ConfigError(f"{path}: [gateway] audit_checkpoint_seconds must be a number > 0")
    return mirror, every, float(seconds)


def _audit_witness(value: object, path: Path) -> str | None:
    if value is None:
        return None
    kind, _, rest = value.partition(":") if isinstance(value, str) else ("", "", "")
    if kind != "file" or not rest:
        raise ConfigError(f'{path}: [gateway] audit_witness must be "file:PATH", not {value!r}')
    return f"file:{(path.parent / rest).resolve()}"


def _database_url(value: object, path: Path) -> str | None:
    """``[gateway] database``: absent means SQLite in the data dir; otherwise a libpq URL
    ``postgresql://user@host:port/dbname?sslmode=...``. A password in the URL is refused
    (the site file is not a secret store): give it to libpq through PGPASSWORD or a
    password file (~/.pgpass, PGPASSFILE, or ``passfile=`` in the URL)."""
    if value is None:
        return None
    where = f"{path}: [gateway] database"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a postgresql:// URL (leave it out for the embedded SQLite database)")
    url = value.strip()
    parts = _split_url(url, where)
    if parts.scheme not in _DATABASE_SCHEMES:
        raise ConfigError(
            f"{where} must be a postgresql:// URL, not {parts.scheme or url!r} "
            "(leave it out for the embedded SQLite database)"
        )
    if parts.password is not None or "password=" in parts.query:
        raise ConfigError(f"{where} must not hold a password; use PGPASSWORD or a password file (~/.pgpass)")
    return url


def _split_url(url: str, where: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise ConfigError(f"{where} is not a valid URL: {exc}") from None
    return parts


def _redis_url(value: object, path: Path) -> str | None:
    """``[gateway] redis``: absent keeps page sign-in sessions and failure limits in memory;
    otherwise ``redis://host:port/db`` (``rediss://`` for TLS), shared by every node. A
    password in the URL is refused, as for ``database``: give it through REDIS_PASSWORD."""
    if value is None:
        return None
    where = f"{path}: [gateway] redis"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{where} must be a redis://host:port/db URL (leave it out to keep sign-in sessions in this node's memory)"
        )
    url = value.strip()
    parts = _split_url(url, where)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ConfigError(f"{where} must be a redis:// or rediss:// URL, not {parts.scheme or url!r}")
    if not parts.hostname:
        raise ConfigError(f"{where} must name a host: redis://host:port/db")
    if parts.password is not None or "password=" in parts.query.lower():
        raise ConfigError(
            f"{where} must not hold a password; give it to the gateway in the REDIS_PASSWORD environment variable"
        )
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigError(f"{where}: the path must be a database number (redis://host:port/0), not {parts.path!r}")
    return url


def _internal_url(value: object, path: Path) -> str | None:
    """``[gateway] internal_url``: the base URL other nodes use to reach this node
    (``http(s)://host:port``, optionally with a path prefix); absent means ``public_url``."""
    if value is None:
        return None
    where = f"{path}: [gateway] internal_url"
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a URL such as http://10.0.0.5:8000 (leave it out to use public_url)")
    url = value.strip().rstrip("/")
    parts = _split_url(url, where)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{where} must be an http:// or https:// URL, not {parts.scheme or url!r}")
    if not parts.hostname:
        raise ConfigError(f"{where} must name a host: http://host:port")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise ConfigError(f"{where} must be a plain base URL (no user, password, query or fragment)")
    return url


def _panic_buttons(entries: object, site: Site, path: Path) -> dict[str, PanicButton]:
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: panic_buttons must be a list of [[panic_buttons]] tables")
    buttons: dict[str, PanicButton] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: panic_buttons[{i}]"
        if not isinstance(entry, dict) or set(entry) - PANIC_KEYS:
            raise ConfigError(f"{where} must be a table with keys {sorted(PANIC_KEYS)}")
        if not all(isinstance(entry.get(k), str) and entry[k] for k in ("id", "building", "action", "secret")):
            raise ConfigError(f"{where} needs id, building, action and secret")
        if entry["building"] not in site.buildings:
            raise ConfigError(f"{where}.building {entry['building']!r} is not a building of the site")
        try:
            action = Action(entry["action"])
            incident = IncidentType(entry.get("incident_type", "other"))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not entry["secret"].startswith("enc:"):
            raise ConfigError(
                f"{where}.secret is stored in plain text; seal it with "
                f"gateway.notifier.seal_secret('{path}', '<secret>')"
            )
        if entry["id"] in buttons:
            raise ConfigError(f"{where}.id {entry['id']!r} is used by another panic button")
        buttons[entry["id"]] = PanicButton(entry["id"], entry["building"], action, incident, entry["secret"])
    return buttons


def _pop_camera_access(raw: dict, path: Path) -> dict[str, CameraAccess]:
    access: dict[str, CameraAccess] = {}
    cameras = raw.get("cameras", [])
    if not isinstance(cameras, list):
        return access
    for i, camera in enumerate(cameras):
        if not isinstance(camera, dict):
            continue
        found = {k: camera.pop(k) for k in CONNECTION_KEYS if k in camera}
        if not found:
            continue
        for key, value in found.items():
            if not isinstance(value, str):
                raise ConfigError(f"{path}: cameras[{i}].{key} must be a string")
        sealed = found.get("password")
        if sealed is not None and not sealed.startswith("enc:"):
            raise ConfigError(
                f"{path}: cameras[{i}].password is stored in plain text; remove it and run "
                "'sightline cameras add' (passwords are kept encrypted)"
            )
        access[str(camera.get("id", i))] = CameraAccess(
            username=found.get("username"),
            sealed_password=sealed,
            onvif=found.get("onvif"),
            snapshot_uri=found.get("snapshot"),
        )
    return access


def _pop_webhooks(raw: dict, path: Path) -> tuple[WebhookConfig, ...]:
    entries = raw.pop("webhooks", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: webhooks must be a list of [[webhooks]] tables")
    webhooks: list[WebhookConfig] = []
    for i, entry in enumerate(entries):
        where = f"{path}: webhooks[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        unknown = set(entry) - WEBHOOK_KEYS
        if unknown:
            raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(WEBHOOK_KEYS)}")
        for key in ("id", "url", "secret"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise ConfigError(f"{where}.{key} must be a non-empty string")
        ident = entry["id"].strip()
        if any(w.id == ident for w in webhooks):
            raise ConfigError(f"{where}.id {ident!r} is used by another webhook")
        url = entry["url"].strip()
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConfigError(f"{where}.url must be an https:// URL")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ConfigError(f"{where}.url must use https (plain http is only allowed to this host)")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(f"{where}.url must not hold credentials; the signature authenticates the sender")
        topics = entry.get("topics", [ALL_TOPICS])
        if not isinstance(topics, list) or not topics or not all(isinstance(t, str) for t in topics):
            raise ConfigError(f'{where}.topics must be a non-empty list of topic names, or ["*"]')
        bad = sorted(set(topics) - TOPICS - PRIVATE_TOPICS - {ALL_TOPICS})
        if bad:
            known = sorted(TOPICS | PRIVATE_TOPICS)
            raise ConfigError(f'{where}.topics has unknown topics {bad}; known: {known} or "*"')
        if not entry["secret"].startswith("enc:"):
            raise ConfigError(
                f"{where}.secret is stored in plain text; replace it with the sealed form that "
                f"gateway.notifier.seal_secret('{path}', '<secret>') returns "
                "(webhook secrets are kept encrypted with this node's key, like camera passwords)"
            )
        webhooks.append(WebhookConfig(id=ident, url=url, topics=frozenset(topics), sealed_secret=entry["secret"]))
    return tuple(webhooks)
