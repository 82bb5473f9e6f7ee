"""Cameras the caller may see right now, their health, and snapshots."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response

from camera_adapters import StreamUnavailable
from camera_adapters.snapshot import SnapshotUnavailable
from emergency.audit import AuditEvent
from emergency.permissions import Permission, may
from gateway.api.deps import ActorDep, GatewayDep, SourceDep
from gateway.api.views import camera_view, refusal_detail
from gateway.errors import ApiError
from gateway.identity.guards import requires

router = APIRouter(prefix="/api/v1", tags=["cameras"])


@router.get("/cameras", dependencies=[Depends(requires(Permission.LIST_CAMERAS))])
def list_cameras(gw: GatewayDep, who: ActorDep) -> list[dict[str, Any]]:
    buildings = gw.config.site.buildings
    return [
        camera_view(c, gw.media.streams(c.id), buildings.get(c.building)) for c in gw.emergencies.visible_cameras(who)
    ]


@router.get("/cameras/{camera_id}", dependencies=[Depends(requires(Permission.LIST_CAMERAS))])
def get_camera(camera_id: str, gw: GatewayDep, who: ActorDep) -> dict[str, Any]:
    camera = next((c for c in gw.emergencies.visible_cameras(who) if c.id == camera_id), None)
    if camera is None:
        raise ApiError(404, "not_found", f"no camera '{camera_id}' that you may see now")
    view = camera_view(camera, gw.media.streams(camera.id), gw.config.site.buildings.get(camera.building))
    if may(who, Permission.SEE_CAMERA_HEALTH, camera.building):
        view["health"] = {stream: gw.media.stats(camera.id, stream) for stream in gw.media.streams(camera.id)}
    return view


@router.get(
    "/cameras/{camera_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
    dependencies=[Depends(requires(Permission.WATCH_LIVE, detail="role_not_permitted"))],
)
async def snapshot(
    camera_id: str,
    gw: GatewayDep,
    who: ActorDep,
    source: SourceDep,
    stream: Literal["main", "sub"] = Query(default="main"),
) -> Response:
    decision = gw.emergencies.decide_view(who, camera_id, source=source)
    if not decision.allowed or decision.grant is None:
        raise ApiError(403, "forbidden", refusal_detail(gw.emergencies, who, decision.reason))
    try:
        shot = await gw.media.snapshot(camera_id, stream)
    except StreamUnavailable:
        raise ApiError(404, "not_found", f"camera '{camera_id}' has no {stream} stream; ask for stream=main") from None
    except SnapshotUnavailable as exc:
        raise ApiError(503, "camera_unavailable", f"{exc}; try again in a few seconds", {"Retry-After": "2"}) from None
    captured = datetime.fromtimestamp(shot.captured, UTC)
    gw.audit.append(
        AuditEvent.SNAPSHOT_SERVED,
        actor=who,
        object=f"camera:{camera_id}",
        source=source,
        reason=decision.reason,
        details={
            "stream": stream,
            "grant": decision.grant.id,
            "captured": captured.isoformat(),
            "bytes": len(shot.jpeg),
        },
    )
    return Response(
        shot.jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store", "X-Captured-At": captured.isoformat()}
    )
