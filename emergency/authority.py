"""Who may do what: commanding an emergency, and viewing a camera."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from emergency.model import Actor, Decision, Grant
from emergency.permissions import Permission, basis, may
from emergency.site import Camera, PrivacyClass


def may_command(actor: Actor, building: str) -> bool:
    """Declare, confirm, cancel, change, extend, all-clear and close: district admins
    anywhere, building admins in their buildings, and their designees likewise."""
    return command_basis(actor, building) is not None


def command_basis(actor: Actor, building: str) -> str | None:
    """Whose rights the actor uses for ``building``: its own id, the account it stands in
    for (recorded in the audit log), or None when it may not command there."""
    return basis(actor, Permission.COMMAND_EMERGENCY, building)


def may_see_metadata(actor: Actor, camera: Camera) -> bool:
    """Camera names and places, not video: administrators in scope and auditors."""
    return may(actor, Permission.SEE_CAMERA_METADATA, camera.building)


def may_see_floor_plan(actor: Actor, building: str, visible: Iterable[Camera]) -> bool:
    """A building's floor plan (with where its cameras are): whoever may see at least one
    camera of that building right now (``visible``: the cameras the actor may see now, as
    for GET /api/v1/cameras), and that building's administrators even when it has none."""
    if may(actor, Permission.COMMAND_EMERGENCY, building):
        return True
    return any(c.building == building for c in visible)


def decide_view(
    actor: Actor, camera: Camera, grants: Iterable[Grant], now: datetime, held: frozenset[str] = frozenset()
) -> Decision:
    """An officer with MFA may watch a ``normal`` camera that a live grant of their agency
    contains and that no privacy hold (a time-out or restraint in progress) covers."""
    if not may(actor, Permission.WATCH_LIVE):
        return Decision(False, "role_not_permitted")
    if not actor.mfa:
        return Decision(False, "mfa_required")
    if camera.privacy is not PrivacyClass.NORMAL:
        return Decision(False, f"privacy_{camera.privacy}")
    if camera.id in held:
        return Decision(False, "privacy_hold")
    for grant in grants:
        if grant.agency == actor.agency and camera.id in grant.camera_ids and grant.live_at(now):
            return Decision(True, "granted", grant)
    return Decision(False, "no_live_grant")
