"""The H.264 RTP payload size for the networks police actually use.

Patrol cars reach us over public-safety LTE (FirstNet and similar) through VPN/IPsec
tunnels; aiortc's default of 1300 bytes plus SRTP, UDP, IP and tunnel overhead can exceed
that path MTU and get fragmented or silently dropped. 1200 bytes leaves room.
:func:`camera_adapters.aiortc_patch.install` sets aiortc's ``PACKET_MAX`` to it (aiortc
reads it at call time, so the module global is enough).
"""

from __future__ import annotations

RTP_PAYLOAD_MAX = 1200
