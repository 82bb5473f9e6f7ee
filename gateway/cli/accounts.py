"""``sightline accounts list|enrol|revoke``: local sign-in credentials on the site file's
accounts, and taking back one person's access (every sign-in, token and video).

Enrolment writes a scrypt hash of the password and a freshly sealed TOTP secret onto the
account's ``[[accounts]]`` block, in place, so the rest of the hand-kept file (comments,
order) is untouched. The secret is shown once, as an otpauth URI and a terminal QR code
for the person's authenticator app, and never stored in the clear. Enrolment is audited
without any secret in the entry.
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys

from emergency.audit import AuditEvent
from emergency.permissions import Permission, role_holds
from gateway.cli.cameras import _operator
from gateway.config import load_config, rewrite_site_file
from gateway.identity import totp
from gateway.identity.credentials import CredentialBox
from gateway.identity.logins import hash_password

MIN_PASSWORD = 12
_BLOCK = re.compile(r"^\s*\[\[?\s*[A-Za-z0-9_.\"-]+\s*\]\]?\s*(#.*)?$")
_ACCOUNTS = re.compile(r"^\s*\[\[\s*accounts\s*\]\]\s*(#.*)?$")


class EnrolError(ValueError):
    """Enrolment cannot go ahead; the message says what to do."""


def set_account_keys(text: str, account_id: str, values: dict[str, str]) -> str:
    """``text`` with ``values`` set on the ``[[accounts]]`` block whose id is ``account_id``
    (existing lines for those keys replaced, new ones added after the id line)."""
    lines = text.splitlines(keepends=True)
    id_line = re.compile(r'^\s*id\s*=\s*"' + re.escape(account_id) + r'"\s*(#.*)?$')
    start = None
    for i, line in enumerate(lines):
        if _ACCOUNTS.match(line):
            end = next((j for j in range(i + 1, len(lines)) if _BLOCK.match(lines[j])), len(lines))
            if any(id_line.match(lines[j]) for j in range(i + 1, end)):
                start = i
                break
    if start is None:
        raise EnrolError(
            f'no [[accounts]] block with id = "{account_id}" in the site file '
            "(inline tables are not edited; write the account as an [[accounts]] block)"
        )
    kept = [
        line for line in lines[start + 1 : end] if not any(re.match(rf"^\s*{re.escape(k)}\s*=", line) for k in values)
    ]
    at = next(k for k, line in enumerate(kept) if id_line.match(line)) + 1
    added = [f'{key} = "{value}"\n' for key, value in values.items()]
    return "".join(lines[: start + 1] + kept[:at] + added + kept[at:] + lines[end:])


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("new password: ")
        if getpass.getpass("again: ") != password:
            raise EnrolError("the two passwords differ; nothing was changed")
    if len(password) < MIN_PASSWORD:
        raise EnrolError(f"the password must be at least {MIN_PASSWORD} characters; nothing was changed")
    return password


def cmd_enrol(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        account = config.site.accounts.get(args.user)
        if account is None:
            raise EnrolError(f"no account {args.user!r} in {config.path}; add its [[accounts]] block first")
        if role_holds(account.role, Permission.USE_CLIENT_CREDENTIALS):
            raise EnrolError(
                f"{args.user!r} is a {account.role} account: it signs in with a client "
                "secret (sightline client-secret), not a password"
            )
        values = {"password_hash": hash_password(_read_password(args.password_stdin))}
        secret = None
        if not args.keep_totp or not config.logins.get(args.user) or not config.logins[args.user].has_totp:
            secret = totp.new_secret()
            values["totp_secret"] = CredentialBox.for_dir(config.secrets_dir).seal(secret)
        updated = rewrite_site_file(
            config, set_account_keys(config.path.read_text(encoding="utf-8"), args.user, values)
        )
    except EnrolError as exc:
        print(f"sightline accounts enrol: {exc}", file=sys.stderr)
        return 2
    from gateway.runtime import open_domain

    store, audit, _ = open_domain(updated)
    try:
        audit.append(
            AuditEvent.ACCOUNT_ENROLLED,
            actor_id=_operator(),
            object=f"account:{args.user}",
            source="cli",
            details={"password": True, "totp": "new" if secret else "kept"},
        )
    finally:
        store.close()
    print(f"password set for {args.user}")
    if secret:
        uri = totp.otpauth_uri(secret, args.user)
        print("new authenticator secret (shown once; scan the QR code or type the secret into the app):")
        print(f"  secret: {secret}")
        print(f"  uri:    {uri}")
        if sys.stdout.isatty():
            import segno

            segno.make(uri, error="m").terminal(compact=True)
    print("restart the gateway for the new credentials to take effect")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{'account':<16} {'role':<16} {'password':<9} {'totp':<5} name")
    for account in config.site.accounts.values():
        login = config.logins.get(account.id)
        if role_holds(account.role, Permission.USE_CLIENT_CREDENTIALS):
            password, has_totp = "client", "-"
        else:
            password = "set" if login and login.password_hash else "NOT SET"
            has_totp = "yes" if login and login.has_totp else "no"
        print(f"{account.id:<16} {account.role:<16} {password:<9} {has_totp:<5} {account.name}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Ends every sign-in of one person in the shared database: the running nodes refuse
    their tokens and cut their video within a second (gateway/identity/revocation.py)."""
    from emergency.clock import SystemClock
    from emergency.sign_ins import SignIns
    from gateway.identity.revocation import revoke_person
    from gateway.runtime import open_domain

    config = load_config(args.config)
    store, audit, _ = open_domain(config)
    try:
        sign_ins = SignIns(store, SystemClock())
        person = args.user
        if person not in config.site.accounts and not sign_ins.live_of(person):
            print(
                f"sightline accounts revoke: nobody called '{person}' is in the site file or signed in", file=sys.stderr
            )
            return 2
        ended = revoke_person(
            sign_ins, audit, person, by_id=_operator(), by_name=_operator(), reason=args.reason, source="cli"
        )
    finally:
        audit.close()
        store.close()
    print(f"revoked {person}: {len(ended)} sign-in(s) ended; their video stops within a second on every node")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    accounts = sub.add_parser("accounts", help="sign-in credentials of the site file's accounts")
    accounts_sub = accounts.add_subparsers(dest="accounts_command", required=True)

    listing = accounts_sub.add_parser("list", help="who can sign in: password and TOTP set or not")
    listing.add_argument("--config", required=True)
    listing.set_defaults(func=cmd_list)

    enrol = accounts_sub.add_parser(
        "enrol", help="set a person's password and a new authenticator (TOTP) secret (audited)"
    )
    enrol.add_argument("--config", required=True)
    enrol.add_argument("--user", required=True)
    enrol.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin instead of prompting",
    )
    enrol.add_argument(
        "--keep-totp", action="store_true", help="only reset the password; keep the enrolled authenticator"
    )
    enrol.set_defaults(func=cmd_enrol)

    revoke = accounts_sub.add_parser(
        "revoke", help="end every sign-in, token and live video of one person, on every node (audited)"
    )
    revoke.add_argument("--config", required=True)
    revoke.add_argument("--user", required=True, help="a site-file id, or a provisioned id such as agency:sub")
    revoke.add_argument("--reason", help="why, for the audit log")
    revoke.set_defaults(func=cmd_revoke)
