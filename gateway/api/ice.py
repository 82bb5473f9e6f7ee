"""The STUN/TURN servers a viewer should use, with TURN credentials made for this caller
(gateway/media/ice.py says why they are short-lived)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from emergency.permissions import Permission
from gateway.api.deps import ActorDep, GatewayDep
from gateway.errors import ApiError
from gateway.identity.credentials import CredentialBox, CredentialError
from gateway.identity.guards import requires
from gateway.media.ice import viewer_ice_servers

router = APIRouter(prefix="/api/v1", tags=["webrtc"])


@router.get("/ice-servers", dependencies=[Depends(requires(Permission.GET_ICE_SERVERS))])
def ice_servers(gw: GatewayDep, who: ActorDep) -> JSONResponse:
    """``{"iceServers": [...], "expires": ISO time}``: pass ``iceServers`` to
    ``RTCPeerConnection``; ask again before ``expires``. Empty when the site lists none."""
    expires = int(gw.clock.now().timestamp()) + gw.config.ice_credential_ttl
    try:
        servers = viewer_ice_servers(
            gw.config.ice_servers, CredentialBox.for_dir(gw.config.secrets_dir), who.id, expires
        )
    except CredentialError:
        raise ApiError(
            503,
            "ice_misconfigured",
            "the TURN secret cannot be opened with this node's key; "
            "tell the administrator to seal it again on this node",
        ) from None
    return JSONResponse(
        {"iceServers": servers, "expires": datetime.fromtimestamp(expires, UTC).isoformat()},
        headers={"Cache-Control": "no-store"},
    )
