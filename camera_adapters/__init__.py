"""Camera media for Sightline: ingest once per camera stream, fan out pre-encoded H.264.

Knows cameras and streams only; who may watch is the gateway's business.
"""

from .errors import StreamUnavailable
from .hubs import MediaHubs
from .rtp_mtu import apply_rtp_payload_limit
from .track import PacketTrack

apply_rtp_payload_limit()

__all__ = ["MediaHubs", "PacketTrack", "StreamUnavailable"]
