"""Taking back one person's access: every sign-in, hence every token, web session and
live video of theirs, on every node.

Ending the sign-in rows is the whole act: tokens name their sign-in and are refused once
it ends (gateway/identity/tokens.py), web sessions hold such a token, and each node's
ticker closes the video of ended sign-ins (gateway/runtime.py). Used by ``sightline
accounts revoke`` and by an administrator's button (gateway/api/revocation.py).
"""

from __future__ import annotations

from emergency.audit import AuditEvent, AuditLog
from emergency.model import Actor
from emergency.sign_ins import REVOKED, SignInRecord, SignIns


def revoke_person(
    sign_ins: SignIns,
    audit: AuditLog,
    person_id: str,
    *,
    by: Actor | None = None,
    by_id: str,
    by_name: str,
    reason: str | None = None,
    source: str | None = None,
) -> list[SignInRecord]:
    """Ends every sign-in of ``person_id`` (a site-file id or a provisioned one such as
    ``agency:sub``) and audits ``auth.access_revoked``, even when none was open."""
    why = REVOKED.format(by=by_name) + (f": {reason}" if reason else "")
    ended = sign_ins.end_all(person_id, why, by=by_id)
    details = {"sign_ins": [r.id for r in ended], "methods": sorted({r.method for r in ended})}
    audit.append(  # the actor's role and agency when a person revoked; the operator's id from the CLI
        AuditEvent.ACCESS_REVOKED,
        actor=by,
        actor_id=by_id,
        object=f"account:{person_id}",
        source=source,
        reason=why,
        details=details,
    )
    return ended
