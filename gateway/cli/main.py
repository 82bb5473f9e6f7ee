"""The ``sightline`` command."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from pathlib import Path

from emergency.audit import AuditEvent
from emergency.migrations import SchemaError
from gateway.config import ConfigError, GatewayConfig, load_config

log = logging.getLogger("sightline")


def _serve(config: GatewayConfig, host: str, port: int, banner: str | None = None) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.runtime import Gateway
    from gateway.server import GatewayServer

    gateway = Gateway(config)
    app = create_app(gateway)
    if banner:
        print(banner, flush=True)
    # uvicorn.run(), with a server that ends relay streams before draining connections
    server = GatewayServer(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False), gateway)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(3)  # uvicorn's STARTUP_FAILURE
    return 0


def _upgrade_at_start(config: GatewayConfig) -> None:
    """``serve`` and ``demo`` bring the database to this code's schema first (or refuse)."""
    from gateway.cli.db import upgrade_database

    summary = upgrade_database(config).summary()
    if summary:
        print(summary, flush=True)


def _issue_token(config: GatewayConfig, user: str, ttl: int, scopes: tuple[str, ...] | None = None) -> str:
    """A bearer token for any account; a records client's carries all its scopes unless
    ``scopes`` names a subset. Audited as a CLI issuance, success or failure."""
    from gateway.identity.tokens import AuthError
    from gateway.runtime import open_domain, token_authority

    store, audit, _ = open_domain(config)
    try:
        try:
            token, jti = token_authority(config, store).issue(user, ttl=ttl, scopes=scopes)
        except AuthError as exc:
            audit.append(
                AuditEvent.AUTH_TOKEN_ISSUED,
                actor_id=f"cli:{getpass.getuser()}",
                object=f"account:{user}",
                outcome="failure",
                source="cli",
                reason=str(exc),
            )
            raise
        account = config.site.accounts[user]
        details = {"token_id": jti, "ttl_seconds": ttl}
        if account.scopes:
            details["scope"] = " ".join(scopes or account.scopes)
        audit.append(
            AuditEvent.AUTH_TOKEN_ISSUED,
            actor_id=f"cli:{getpass.getuser()}",
            object=f"account:{user}",
            source="cli",
            reason="bearer token issued from the command line",
            details=details,
        )
        return token
    finally:
        store.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.cli.demo import ensure_demo_site, login_banner

    data_dir = Path(args.data_dir).resolve()
    config = load_config(ensure_demo_site(data_dir))
    tls_lines: list[str] = []
    if args.tls and config.tls is None:
        config, tls_lines = _demo_tls(config, data_dir, args.host)
    _upgrade_at_start(config)
    base = f"{'https' if config.tls else 'http'}://{args.host}:{args.port}"
    lines = [
        "Sightline demo",
        f"  site file : {config.path}   (use --config {config.path} with other commands)",
        f"  gateway   : {base}   (health: {base}/healthz)",
        *tls_lines,
        "  accounts  : bearer tokens for automation, valid 8 hours (send 'Authorization: Bearer <token>'; "
        "they never open video: sign in, or POST /api/v1/auth/token)",
    ]
    for account in config.site.accounts.values():
        token = _issue_token(config, account.id, 8 * 3600)
        lines.append(f"    {account.id:<11} {account.role:<15} {account.name}")
        lines.append(f"      {token}")
    lines += login_banner(data_dir, base)
    lines.append(
        "  Try: declare LOCKDOWN as admin: POST /api/v1/emergencies "
        '{"building": "lincoln-hs", "action": "LOCKDOWN", "incident_type": "armed_intruder"}'
    )
    return _serve(config, args.host, args.port, "\n".join(lines))


def _demo_tls(config: GatewayConfig, data_dir: Path, host: str) -> tuple[GatewayConfig, list[str]]:
    """``demo --tls`` without ``tls_cert`` in the site file: a throwaway CA and certificate
    in the data dir (gateway/cli/demo_tls.py), served as if the site file named them."""
    from dataclasses import replace

    from gateway.cli.demo_tls import demo_certificate
    from gateway.tls import parse_tls

    ca, cert, key = demo_certificate(data_dir, host)
    tls = parse_tls(str(cert), str(key), data_dir, "demo --tls:")
    public_url = config.public_url.replace("http://", "https://", 1)
    lines = [
        f"  TLS       : {cert} (made for this demo); have the browser trust {ca}",
        "              e.g. curl --cacert that file, or accept the browser's warning once",
    ]
    return replace(config, tls=tls, public_url=public_url), lines


def cmd_serve(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    _upgrade_at_start(config)
    return _serve(config, args.host, args.port)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """Brings the database to this code's schema revision, printing from and to."""
    from gateway.cli.db import upgrade_database

    print("\n".join(upgrade_database(load_config(args.config)).lines()))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from gateway.identity.tokens import AuthError

    try:
        scopes = tuple(s for arg in args.scope for s in arg.split()) if args.scope else None
        print(_issue_token(load_config(args.config), args.user, args.ttl, scopes))
    except AuthError as exc:
        print(f"sightline token: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_client_secret(args: argparse.Namespace) -> int:
    from gateway.identity.oauth import hash_client_secret, new_client_secret

    value = new_client_secret()
    print(f"client secret (give it to the records system; it is not stored anywhere): {value}")
    print("put this on the client's [[accounts]] entry of the site file:")
    print(f'client_secret = "{hash_client_secret(value)}"')
    return 0


def cmd_seal(args: argparse.Namespace) -> int:
    """Seals a secret typed on stdin with this node's credential key, for the site file."""
    from gateway.identity.credentials import CredentialBox

    config = load_config(args.config)
    if sys.stdin.isatty():
        value = getpass.getpass("secret to seal: ")
    else:
        value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        print("sightline seal: nothing to seal (the secret was empty)", file=sys.stderr)
        return 2
    print(CredentialBox.for_dir(config.secrets_dir).seal(value))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Checks the chain, every checkpoint's signature and hash, and the mirror; prints
    what it checked; exit 1 naming the first bad seq."""
    from gateway.runtime import open_domain

    store, audit, _ = open_domain(load_config(args.config))
    try:
        result = audit.verify()
        audit.append(
            AuditEvent.AUDIT_VERIFIED,
            actor_id=f"cli:{getpass.getuser()}",
            object="audit_log",
            outcome="success" if result.ok else "failure",
            source="cli",
            reason=result.problem,
            details={
                "checked": result.checked,
                "first_bad_seq": result.first_bad_seq,
                "checkpoints": result.checkpoints,
                "mirror": result.mirror,
            },
        )
    finally:
        store.close()
    print(f"entries     : {result.checked} checked (hash chain from seq 1)")
    last = f", last at seq {result.last_checkpoint_seq}" if result.last_checkpoint_seq else ""
    print(f"checkpoints : {result.checkpoints} checked{last}")
    for signer in result.signers:
        print(f"  signer    : {signer}")
    print(f"mirror      : {result.mirror}")
    print(f"witness     : {result.witness}")
    for note in result.notes:
        print(f"note        : {note}")
    if result.ok:
        print(f"audit log intact: {result.checked} entries verified")
        return 0
    print(f"audit log FAILED verification at seq {result.first_bad_seq}: {result.problem}")
    return 1


def cmd_audit_acknowledge(args: argparse.Namespace) -> int:
    """Records (audited) that an auditor looked into the entries up to ``--through``
    that the mirror lacks; verify then notes them instead of failing."""
    from gateway.runtime import open_domain

    if args.through < 1 or not args.reason.strip():
        print("sightline audit acknowledge: --through must be >= 1 and --reason must say why", file=sys.stderr)
        return 2
    store, audit, _ = open_domain(load_config(args.config))
    try:
        entry = audit.append(
            AuditEvent.AUDIT_MIRROR_ACKNOWLEDGED,
            actor_id=f"cli:{getpass.getuser()}",
            object="audit_log",
            source="cli",
            reason=args.reason,
            details={"through": args.through, "why": args.reason},
        )
    finally:
        store.close()
    print(f"acknowledged: entries up to seq {args.through} missing from the mirror (recorded as seq {entry.seq})")
    return 0


def cmd_audit_export(args: argparse.Namespace) -> int:
    from emergency.errors import NotFound
    from gateway.reports import export
    from gateway.reports.audit_packet import packet
    from gateway.runtime import open_domain

    config = load_config(args.config)
    store, audit, service = open_domain(config)
    try:
        try:
            data = export.render(
                packet(config.site, service, audit, args.emergency, f"cli:{getpass.getuser()}"), args.format
            )
        except NotFound as exc:
            print(f"sightline audit export: {exc}; list them with GET /api/v1/emergencies", file=sys.stderr)
            return 2
        audit.append(
            AuditEvent.AUDIT_EXPORTED,
            actor_id=f"cli:{getpass.getuser()}",
            object=f"emergency:{args.emergency}",
            source="cli",
            details={"emergency": args.emergency, "format": args.format, "bytes": len(data)},
        )
    finally:
        store.close()
    output = args.output or f"sightline-{args.emergency}.{args.format}"
    if output == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(output).write_bytes(data)
        print(f"wrote {output} ({len(data)} bytes)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sightline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the sample district with simulated cameras")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--data-dir", default="demo-data")
    demo.add_argument(
        "--tls",
        action="store_true",
        help="serve HTTPS with a throwaway certificate made in DATA_DIR/tls (unless the site file names one)",
    )
    demo.set_defaults(func=cmd_demo)

    serve = sub.add_parser("serve", help="run the gateway for a site file")
    serve.add_argument("--config", required=True)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    token = sub.add_parser("token", help="print a bearer token for an account (audited)")
    token.add_argument("--config", required=True)
    token.add_argument("--user", required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds (default 3600)")
    token.add_argument(
        "--scope",
        action="append",
        help="records clients only: limit the token to these scopes (repeatable; default all)",
    )
    token.set_defaults(func=cmd_token)

    secret = sub.add_parser(
        "client-secret", help="make a records client's OAuth2 secret: prints it once, and the line to store"
    )
    secret.set_defaults(func=cmd_client_secret)

    seal = sub.add_parser(
        "seal", help="seal a secret from stdin with this node's key, for the site file (e.g. a TURN auth_secret)"
    )
    seal.add_argument("--config", required=True)
    seal.set_defaults(func=cmd_seal)

    audit = sub.add_parser("audit", help="audit log tools")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad entry")
    verify.add_argument("--config", required=True)
    verify.set_defaults(func=cmd_audit_verify)

    ack = audit_sub.add_parser(
        "acknowledge", help="record (audited) that entries up to a seq are known to be missing from the mirror"
    )
    ack.add_argument("--config", required=True)
    ack.add_argument("--through", type=int, required=True, help="the highest seq acknowledged")
    ack.add_argument("--reason", required=True, help="what the auditor found")
    ack.set_defaults(func=cmd_audit_acknowledge)

    export_cmd = audit_sub.add_parser("export", help="the auditor packet for one emergency")
    export_cmd.add_argument("--config", required=True)
    export_cmd.add_argument("--emergency", required=True, help="emergency id")
    export_cmd.add_argument("--format", choices=("json", "csv", "pdf"), default="pdf")
    export_cmd.add_argument("--output", help="file to write (default sightline-ID.FORMAT; - for stdout)")
    export_cmd.set_defaults(func=cmd_audit_export)

    db = sub.add_parser("db", help="database tools")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="bring the database to this version's schema (SQLite: copy first)")
    upgrade.add_argument("--config", required=True)
    upgrade.set_defaults(func=cmd_db_upgrade)

    from gateway.cli.cameras import add_parser as add_camera_commands

    add_camera_commands(sub)
    from gateway.cli.accounts import add_parser as add_account_commands

    add_account_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)  # several lines per ICE check per viewer
    logging.getLogger("alembic").setLevel(logging.WARNING)  # db upgrade and start-up say what changed
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, SchemaError) as exc:
        print(f"sightline: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
