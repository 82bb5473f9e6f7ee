"""Caps aiortc's H.264 RTP payload size for the networks police actually use."""

from __future__ import annotations

import aiortc.codecs.h264 as _h264

RTP_PAYLOAD_MAX = 1200


def apply_rtp_payload_limit(limit: int = RTP_PAYLOAD_MAX) -> None:
    """Keep H.264 RTP payloads at or below ``limit`` bytes.

    Patrol cars reach us over public-safety LTE (FirstNet and similar) through VPN/IPsec
    tunnels; aiortc's default of 1300 bytes plus SRTP, UDP, IP and tunnel overhead can
    exceed that path MTU and get fragmented or silently dropped. 1200 bytes leaves room.
    aiortc reads ``PACKET_MAX`` at call time, so setting the module global is enough.
    """
    _h264.PACKET_MAX = limit
