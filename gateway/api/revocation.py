"""Who is signed in, and an administrator's button that takes one person's access back.

* ``GET /api/v1/sign-ins`` -- the sign-ins that have not ended nor expired: whose, how,
  since and until when, and whether their video plays now (on any node).
* ``POST /api/v1/people/{person_id}/revoke`` -- ends every sign-in of that person (a
  site-file id, or a provisioned one such as ``agency:sub`` or ``guest:x``): their tokens
  and web sessions are refused from then on and their live video stops within a second
  on every node (gateway/identity/revocation.py). Audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from emergency.permissions import Permission
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.errors import ApiError
from gateway.identity.guards import requires
from gateway.identity.revocation import revoke_person

router = APIRouter(tags=["sign-in"])


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500, description="why, for the audit log")


@router.get("/api/v1/sign-ins", dependencies=[Depends(requires(Permission.REVOKE_ACCESS))])
def list_sign_ins(gw: GatewayDep, who: ActorDep) -> list[dict[str, Any]]:
    """Everyone signed in now, oldest first, with whether their video plays."""
    live = gw.sign_ins.live_of()
    watching = gw.sign_ins.watching([r.id for r in live])
    directory = gw.tokens.directory
    return [
        {
            "sign_in": r.id,
            "person": r.account_id,
            "name": directory.name(r.account_id),
            "method": r.method,
            "mfa": r.mfa,
            "since": r.created.isoformat(),
            "expires": r.expires.isoformat(),
            "watching": r.id in watching,
        }
        for r in live
    ]


@router.post("/api/v1/people/{person_id}/revoke", dependencies=[Depends(requires(Permission.REVOKE_ACCESS))])
async def revoke(
    person_id: str, gw: GatewayDep, who: ActorDep, source: SourceDep, body: RevokeBody | None = None
) -> dict[str, Any]:
    """Take back every sign-in, token and live video of one person, on every node."""
    if gw.tokens.directory.get(person_id) is None and not gw.sign_ins.live_of(person_id):
        raise ApiError(404, "not_found", f"nobody called '{person_id}' is known or signed in")
    if person_id == who.id:
        raise ApiError(400, "bad_request", "you cannot revoke your own access here; sign out instead")
    ended = revoke_person(
        gw.sign_ins,
        gw.audit,
        person_id,
        by=who,
        by_id=who.id,
        by_name=gw.tokens.directory.name(who.id),
        reason=(body.reason or "").strip() or None if body else None,
        source=source,
    )
    for record in ended:
        gw.tokens.forget(record.id)
    closed = await gw.close_ended_sign_ins()  # this node at once; the others on their next tick
    return {"person": person_id, "sign_ins_ended": len(ended), "video_sessions_closed_here": closed}
