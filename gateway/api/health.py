"""Liveness and metrics for the operator's monitoring."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from gateway.api.deps import GatewayDep
from gateway.identity.guards import public
from gateway.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["operations"])


@router.get("/healthz", dependencies=[Depends(public("liveness for the operator's monitoring"))])
def healthz(gw: GatewayDep) -> dict[str, Any]:
    sender = gw.rtp_sender.name if gw.rtp_sender is not None else None  # "lean" or "aiortc"
    return {
        "status": "ok",
        "node": gw.config.node,
        "cameras": len(gw.config.site.cameras),
        "sessions": len(gw.sessions),
        "rtp_sender": sender,
    }


@router.get(
    "/metrics", dependencies=[Depends(public("Prometheus metrics (counts only) for the operator's monitoring"))]
)
def metrics(gw: GatewayDep) -> Response:
    gw.metrics.view_sessions.set(len(gw.sessions))
    return Response(gw.metrics.render(), media_type=CONTENT_TYPE_LATEST)
