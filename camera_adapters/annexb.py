"""H.264 bitstream normalisation so every keyframe is a self-contained entry point.

WebRTC viewers join mid-stream and aiortc packs whatever bytes we hand it, so each
access unit must be Annex-B and each IDR must carry its SPS/PPS, whatever the camera did.
"""

from __future__ import annotations

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
START_CODE = b"\x00\x00\x00\x01"


def is_annexb(data: bytes) -> bool:
    return data.startswith(b"\x00\x00\x01") or data.startswith(START_CODE)


def split_nals(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B buffer, without start codes."""
    nals: list[bytes] = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        begin = pos + 3
        nxt = data.find(b"\x00\x00\x01", begin)
        end = len(data) if nxt < 0 else nxt
        nal = data[begin:end].rstrip(b"\x00") if nxt >= 0 else data[begin:end]
        if nal:
            nals.append(nal)
        pos = nxt
    return nals


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def join_nals(nals: list[bytes]) -> bytes:
    return b"".join(START_CODE + nal for nal in nals)


def avcc_to_nals(data: bytes, length_size: int) -> list[bytes]:
    """NAL units of a length-prefixed (AVCC/MP4-style) buffer."""
    nals: list[bytes] = []
    pos = 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        nals.append(data[pos : pos + size])
        pos += size
    return nals


def parse_extradata(extradata: bytes | None) -> tuple[int | None, list[bytes]]:
    """(AVCC length size or None for Annex-B, parameter-set NALs) from codec extradata."""
    if not extradata:
        return None, []
    if extradata[0] != 1:
        return None, [n for n in split_nals(extradata) if nal_type(n) in (NAL_SPS, NAL_PPS)]
    length_size = (extradata[4] & 0x03) + 1
    sets: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):
        if pos >= len(extradata):
            break
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            size = int.from_bytes(extradata[pos : pos + 2], "big")
            sets.append(extradata[pos + 2 : pos + 2 + size])
            pos += 2 + size
    return length_size, sets


class ParameterSets:
    """Remembers the latest SPS/PPS and prepends them to IDR access units lacking them."""

    def __init__(self, extradata: bytes | None = None) -> None:
        self.length_size, initial = parse_extradata(extradata)
        self._sps = [n for n in initial if nal_type(n) == NAL_SPS]
        self._pps = [n for n in initial if nal_type(n) == NAL_PPS]

    def nals_of(self, data: bytes) -> list[bytes]:
        """Split a demuxed packet whichever framing it uses."""
        if self.length_size is not None and not is_annexb(data):
            return avcc_to_nals(data, self.length_size)
        return split_nals(data)

    def complete(self, nals: list[bytes]) -> tuple[bytes, bool]:
        """Annex-B bytes of one access unit and whether it is an IDR."""
        types = [nal_type(n) for n in nals]
        if NAL_SPS in types:
            self._sps = [n for n in nals if nal_type(n) == NAL_SPS]
        if NAL_PPS in types:
            self._pps = [n for n in nals if nal_type(n) == NAL_PPS]
        idr = NAL_IDR in types
        if idr and (NAL_SPS not in types or NAL_PPS not in types):
            first_idr = types.index(NAL_IDR)
            head = [n for n in nals[:first_idr] if nal_type(n) not in (NAL_SPS, NAL_PPS)]
            nals = head + self._sps + self._pps + nals[first_idr:]
        return join_nals(nals), idr


def profile_level_id(data: bytes) -> str | None:
    """The SDP ``profile-level-id`` (profile_idc, constraint flags, level_idc as hex) of
    the first SPS in an Annex-B buffer, so a WebRTC answer can announce the real stream."""
    for nal in split_nals(data):
        if nal_type(nal) == NAL_SPS and len(nal) >= 4:
            return nal[1:4].hex()
    return None
