"""``sightline cameras discover|list|add``: the camera registry from the command line."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import re
import sys
import urllib.error
import urllib.request
from typing import Any

from camera_adapters.registry import split_credentials
from camera_adapters.urls import redact
from emergency.audit import AuditEvent
from gateway.cli.toml_writer import to_toml
from gateway.config import GatewayConfig, load_config, rewrite_site_file
from gateway.identity.credentials import CredentialBox

PASSWORD_ENV = "SIGHTLINE_CAMERA_PASSWORD"


def _operator() -> str:
    return f"cli:{getpass.getuser()}"


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "camera"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _host_port(text: str, default_port: int = 80) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit():
        return text, default_port
    return host, int(port)


def _append_camera(config: GatewayConfig, entry: dict[str, Any]) -> GatewayConfig:
    """Appends one [[cameras]] block; the file is restored if it then fails to load."""
    original = config.path.read_text(encoding="utf-8")
    return rewrite_site_file(config, original.rstrip("\n") + "\n\n" + to_toml({"cameras": [entry]}))


def cmd_add(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    camera_id = args.id or _slug(args.name, set(config.site.cameras))
    entry: dict[str, Any] = {
        "id": camera_id,
        "name": args.name,
        "building": args.building,
        "zone": args.zone,
        "privacy": args.privacy,
    }
    if args.tags:
        entry["tags"] = [t.strip() for t in args.tags.split(",") if t.strip()]
    summary = ""
    if args.rtsp:
        main, user, inline_password = split_credentials(args.rtsp)
        entry["main"] = main
        if args.sub_rtsp:
            entry["sub"] = split_credentials(args.sub_rtsp)[0]
        username, password = args.username or user, password if password is not None else inline_password
        summary = f"RTSP {redact(main)}"
    else:
        from camera_adapters.onvif import OnvifError, probe_camera

        host, port = _host_port(args.onvif)
        username = args.username
        print(f"asking the camera at {host}:{port} for its profiles (ONVIF)...", file=sys.stderr)
        try:
            found = asyncio.run(probe_camera(host, port, username or "", password or ""))
        except OnvifError as exc:
            print(f"sightline cameras add: {exc}", file=sys.stderr)
            return 2
        entry["main"] = found.main_uri
        if found.sub_uri:
            entry["sub"] = found.sub_uri
        entry["onvif"] = f"{host}:{port}"
        if found.snapshot_uri:
            entry["snapshot"] = found.snapshot_uri
        summary = (
            f"ONVIF {found.info.manufacturer} {found.info.model}, main {redact(found.main_uri)}"
            + (f", sub {redact(found.sub_uri)}" if found.sub_uri else "")
            + (f", camera clock off by {found.clock_offset:+.0f} s" if abs(found.clock_offset) >= 5 else "")
        )
    if username:
        entry["username"] = username
    if password:
        entry["password"] = CredentialBox.for_dir(config.secrets_dir).seal(password)

    updated = _append_camera(config, entry)
    from gateway.runtime import open_domain

    store, audit, _ = open_domain(updated)
    try:
        audit.append(
            AuditEvent.CAMERA_ADDED,
            actor_id=_operator(),
            object=f"camera:{camera_id}",
            source="cli",
            details={
                "building": args.building,
                "zone": args.zone,
                "privacy": args.privacy,
                "source": summary,
                "credentials": bool(password),
            },
        )
    finally:
        store.close()
    print(f"added camera {camera_id} ({args.privacy}) in {args.building}/{args.zone}: {summary}")
    print("restart the gateway to start using it")
    return 0


def _health(config: GatewayConfig, gateway_url: str) -> dict[str, dict[str, Any]] | None:
    """Health as the running gateway sees it, or None when no gateway answers."""
    from gateway.runtime import open_domain, token_authority

    admins = [a.id for a in config.site.accounts.values() if a.role == "district_admin"]
    if not admins:
        return None
    try:
        urllib.request.urlopen(f"{gateway_url}/healthz", timeout=2).read()
    except (urllib.error.URLError, OSError):
        return None
    store, audit, _ = open_domain(config)
    token, jti = token_authority(config, store).issue(admins[0], ttl=60)
    audit.append(
        AuditEvent.AUTH_TOKEN_ISSUED,
        actor_id=_operator(),
        object=f"account:{admins[0]}",
        source="cli",
        reason="short-lived token for 'sightline cameras list'",
        details={"token_id": jti, "ttl_seconds": 60},
    )
    store.close()
    health = {}
    for camera_id in config.site.cameras:
        request = urllib.request.Request(
            f"{gateway_url}/api/v1/cameras/{camera_id}", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            health[camera_id] = json.loads(urllib.request.urlopen(request, timeout=5).read()).get("health", {})
        except (urllib.error.URLError, OSError, ValueError):
            health[camera_id] = {}
    return health


def _health_text(stream: dict[str, Any] | None) -> str:
    if not stream:
        return "-"
    text = f"{stream.get('state', '?')}"
    if stream.get("state") == "live":
        text += f" {stream.get('fps', 0):.0f}fps {stream.get('bitrate_kbps', 0):.0f}kb/s"
    if stream.get("reconnects"):
        text += f" reconnects={stream['reconnects']}"
    return text


def cmd_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    gateway_url = (args.gateway or config.public_url).rstrip("/")
    health = _health(config, gateway_url)
    rows = [("ID", "NAME", "BUILDING/ZONE", "PRIVACY", "SOURCE", "MAIN", "SUB")]
    for camera in config.site.cameras.values():
        h = (health or {}).get(camera.id, {})
        access = config.access.get(camera.id)
        source = f"onvif {access.onvif}" if access and access.onvif else redact(camera.main)
        rows.append(
            (
                camera.id,
                camera.name,
                f"{camera.building}/{camera.zone}",
                str(camera.privacy),
                source,
                _health_text(h.get("main")),
                _health_text(h.get("sub")) if camera.sub else "none",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if health is None:
        print(f"\n(no gateway answered at {gateway_url}; health is shown while it runs — use --gateway URL)")
    return 0


def cmd_discover(args: argparse.Namespace) -> int:
    from camera_adapters.discovery import discover

    targets = [(h, p) for h, p in (_host_port(t, 3702) for t in args.target)] or None
    print(f"probing for ONVIF cameras for {args.timeout:.0f} s...", file=sys.stderr)
    devices = asyncio.run(discover(args.timeout, targets=targets) if targets else discover(args.timeout))
    if not devices:
        print(
            "no ONVIF cameras answered. Cameras on another subnet or VLAN do not hear the probe: "
            "use --target HOST[:PORT], or add them with 'sightline cameras add --onvif HOST'."
        )
        return 1
    for d in devices:
        print(f"{d.name or '(unnamed)'}  {d.hardware or ''}  {' '.join(d.xaddrs)}")
    print(
        f"\n{len(devices)} found. Add one with: sightline cameras add --config FILE --name NAME "
        "--building B --zone Z --onvif HOST[:PORT] --username U --password P"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cameras = sub.add_parser("cameras", help="discover, list and add cameras")
    cam_sub = cameras.add_subparsers(dest="cameras_command", required=True)

    discover = cam_sub.add_parser("discover", help="find ONVIF cameras with WS-Discovery")
    discover.add_argument("--timeout", type=float, default=3.0)
    discover.add_argument(
        "--target", action="append", default=[], help="probe HOST[:PORT] directly (repeatable) instead of multicast"
    )
    discover.set_defaults(func=cmd_discover)

    listing = cam_sub.add_parser("list", help="cameras in the site file, with health from the running gateway")
    listing.add_argument("--config", required=True)
    listing.add_argument("--gateway", help="URL of the running gateway (default: [gateway] public_url)")
    listing.set_defaults(func=cmd_list)

    add = cam_sub.add_parser("add", help="add a camera to the site file (password stored encrypted)")
    add.add_argument("--config", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--building", required=True)
    add.add_argument("--zone", required=True)
    add.add_argument("--id", help="camera id (default: from the name)")
    add.add_argument(
        "--privacy",
        choices=("normal", "sensitive", "never"),
        default="normal",
        help="sensitive: nurse, counselling, time-out rooms; never: restrooms, locker rooms",
    )
    add.add_argument("--tags", help="comma-separated coverage tags")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--rtsp", help="rtsp://HOST/PATH of the main stream")
    source.add_argument("--onvif", help="HOST[:PORT] of the camera's ONVIF service")
    add.add_argument("--sub-rtsp", help="rtsp URL of the sub stream (with --rtsp)")
    add.add_argument("--username")
    add.add_argument("--password", help=f"or set {PASSWORD_ENV} to keep it out of the process list")
    add.set_defaults(func=cmd_add)
