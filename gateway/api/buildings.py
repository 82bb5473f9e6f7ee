"""Buildings: a building's floor plan image, on which the pages place its cameras.

Who may see it is one rule, ``EmergencyService.may_see_floor_plan``
(emergency/authority.py ``may_see_floor_plan``): whoever may see at least one camera of
the building right now (exactly the cameras GET /api/v1/cameras lists for them), and the
building's administrators. Bearer token or the pages' session cookie, like every API call.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Response

from emergency.audit import AuditEvent
from emergency.permissions import Permission
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.api.floor_plans import MEDIA_TYPES, FloorPlanError, read
from gateway.errors import ApiError
from gateway.identity.guards import requires

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["buildings"])

PLAN_HEADERS = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}
# An SVG opened on its own is a document that could run script: this one may not.
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}


@router.get(
    "/buildings/{building_id}/floor-plan",
    response_class=Response,
    responses={
        200: {"description": "the floor plan image", "content": {t: {} for t in sorted(set(MEDIA_TYPES.values()))}},
        403: {"description": "you may see none of the building's cameras now", "content": _ERROR},
        404: {"description": "no such building, or it has no floor plan", "content": _ERROR},
    },
    dependencies=[Depends(requires(Permission.SEE_FLOOR_PLANS))],
)
def floor_plan(building_id: str, gw: GatewayDep, who: ActorDep, source: SourceDep) -> Response:
    building = gw.config.site.buildings.get(building_id)
    if building is None:
        raise ApiError(404, "not_found", f"no building '{building_id}' in this district")
    if not gw.emergencies.may_see_floor_plan(who, building.id):
        gw.audit.append(
            AuditEvent.PERMISSION_DENIED,
            actor=who,
            object=f"building:{building.id}",
            outcome="denied",
            source=source,
            reason="floor plan: may see none of the building's cameras now",
        )
        raise ApiError(
            403,
            "forbidden",
            f"you may see the floor plan of {building.name} only while you may see "
            "one of its cameras (or if you administer the building)",
        )
    plan = gw.config.floor_plans.get(building.id)
    if plan is None:
        raise ApiError(
            404,
            "not_found",
            f"{building.name} has no floor plan image: the site file names none "
            "(floor_plan on its [[buildings]] entry)",
        )
    try:
        data = read(plan)
    except FloorPlanError as exc:
        log.warning("floor plan of %s cannot be served: %s", building.id, exc)
        raise ApiError(
            503,
            "floor_plan_unavailable",
            f"the floor plan file of {building.name} cannot be read now; an administrator has to restore it",
        ) from None
    headers = dict(PLAN_HEADERS)
    if plan.is_svg:
        headers["Content-Security-Policy"] = SVG_POLICY
    return Response(data, media_type=plan.media_type, headers=headers)
