"""Camera media for Sightline: ingest once per camera stream, fan out pre-encoded H.264.

Knows cameras and streams only; who may watch is the gateway's business. Importing it
changes nothing in aiortc: the gateway calls :func:`install_aiortc_patch` once at start
(see :mod:`camera_adapters.aiortc_patch`).
"""

from .aiortc_patch import SenderChoice
from .aiortc_patch import install as install_aiortc_patch
from .errors import StreamUnavailable
from .hubs import MediaHubs
from .track import PacketTrack

__all__ = ["MediaHubs", "PacketTrack", "SenderChoice", "StreamUnavailable", "install_aiortc_patch"]
