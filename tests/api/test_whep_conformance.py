"""WHEP as draft-ietf-wish-whep specifies it, checked against a running gateway and real
aiortc viewers: ETag, PATCH (trickle ICE; ICE restart refused as the draft allows), Link
ice-server headers, OPTIONS and 405 with Allow, 503 with Retry-After (node full, camera
starting), CORS for listed origins only, audio answered inactive, RSA DTLS certificates."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx
import pytest
from aiortc import RTCCertificate, RTCSessionDescription
from aiortc.rtcdtlstransport import generate_certificate
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import ConfigError, load_config
from gateway.identity.credentials import CredentialBox
from gateway.media.ice import turn_credentials
from gateway.media.trickle import ice_transport
from tests.whep_client import WhepViewer

CAMERA = "hs-front"
LOCKDOWN = {
    "building": "lincoln-hs",
    "action": "LOCKDOWN",
    "incident_type": "armed_intruder",
    "threat_basis": "Caller reports a person with a handgun in the east parking lot.",
}
WALL = "https://wall.agency.example"
TURN_SECRET = "conformance-turn-secret"


def with_gateway_keys(site: Path, toml: str) -> Path:
    text = site.read_text()
    site.write_text(text.replace("[gateway]\n", "[gateway]\n" + toml, 1))
    return site


async def declare(gw) -> None:
    async with gw.client("admin") as admin:
        created = await admin.post("/api/v1/emergencies", json=LOCKDOWN)
        assert created.status_code == 201, created.text
        confirmed = await admin.post(f"/api/v1/emergencies/{created.json()['id']}/confirm")
        assert confirmed.json()["state"] == "active", confirmed.text


@pytest.fixture
async def gw(site_file, run_gateway, tmp_path):
    secret = CredentialBox.for_dir(tmp_path / "secrets").seal(TURN_SECRET)
    path = with_gateway_keys(
        site_file(),
        f'whep_cors_origins = ["{WALL}"]\n'
        f'ice_servers = [{{urls = ["stun:stun.example:3478"]}}, '
        f'{{urls = ["turn:turn.example:3478?transport=udp", "turns:turn.example:443?transport=tcp"], '
        f'auth_secret = "{secret}"}}]\n',
    )
    running = await run_gateway(path)
    await declare(running)
    return running


def session_path(viewer: WhepViewer) -> str:
    assert viewer.location
    return viewer.location


# ---------------------------------------------------------------- 201: ETag, Link, audio


async def test_201_carries_location_etag_and_this_viewers_ice_servers(gw) -> None:
    viewer = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
    try:
        answer = await viewer.start()
        assert answer.status_code == 201, answer.text
        assert re.fullmatch(r'"[0-9a-f]{20}"', answer.headers["etag"])
        assert answer.headers["cache-control"] == "no-store"
        links = answer.headers.get_list("link")
        assert '<stun:stun.example:3478>; rel="ice-server"' in links
        turn = [link for link in links if link.startswith("<turn:turn.example:3478?transport=udp>")]
        assert len(turn) == 1 and len(links) == 3, links
        username = re.search(r'username="([^"]+)"', turn[0]).group(1)
        credential = re.search(r'credential="([^"]+)"', turn[0]).group(1)
        assert 'credential-type="password"' in turn[0]
        expiry, user = username.split(":")
        assert user == "officer"
        assert credential == turn_credentials(TURN_SECRET, "officer", int(expiry))[1]
        assert TURN_SECRET not in str(answer.headers)
        await viewer.wait_frames(3, timeout=10)
    finally:
        await viewer.close()


async def test_an_offered_audio_line_is_answered_inactive(gw) -> None:
    for direction in ("recvonly", "sendrecv"):
        viewer = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
        viewer.pc.addTransceiver("audio", direction=direction)
        try:
            answer = await viewer.start()
            assert answer.status_code == 201, answer.text
            audio = answer.text.split("m=audio", 1)[1].split("m=video", 1)[0]
            assert "a=inactive" in audio, audio
            assert not re.search(r"a=(sendrecv|sendonly|recvonly)", audio), audio
            await viewer.wait_frames(3, timeout=10)
        finally:
            await viewer.close()


# ---------------------------------------------------------------- OPTIONS and 405


async def test_options_and_405_name_every_method(gw) -> None:
    viewer = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
    try:
        assert (await viewer.start()).status_code == 201
        async with httpx.AsyncClient(base_url=gw.base_url) as anonymous:
            endpoint = await anonymous.options(f"/whep/{CAMERA}")
            assert endpoint.status_code == 204
            assert endpoint.headers["accept-post"] == "application/sdp"
            assert endpoint.headers["allow"] == "OPTIONS, POST"
            resource = await anonymous.options(session_path(viewer))
            assert resource.status_code == 204
            assert resource.headers["allow"] == "OPTIONS, GET, PATCH, DELETE"
            assert resource.headers["accept-patch"] == "application/trickle-ice-sdpfrag"
            assert (
                "link" not in endpoint.headers and "link" not in resource.headers
            )  # credentials never unauthenticated
            for method in ("GET", "PUT", "PATCH", "DELETE"):
                r = await anonymous.request(method, f"/whep/{CAMERA}")
                assert r.status_code == 405, (method, r.status_code)
                assert r.headers["allow"] == "OPTIONS, POST" and r.json()["error"] == "method_not_allowed"
            for method in ("PUT", "POST"):
                r = await anonymous.request(method, session_path(viewer))
                assert r.status_code == 405, (method, r.status_code)
                assert r.headers["allow"] == "OPTIONS, GET, PATCH, DELETE"
    finally:
        await viewer.close()


# ---------------------------------------------------------------- PATCH: trickle ICE, ETag


def without_candidates(sdp: str) -> str:
    return "".join(
        line + "\r\n"
        for line in sdp.splitlines()
        if line and not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )


def candidate_fragment(sdp: str) -> str:
    lines = sdp.splitlines()
    keep = [line for line in lines if line.startswith(("a=ice-ufrag:", "a=ice-pwd:"))][:2]
    mid = next(line for line in lines if line.startswith("a=mid:"))
    return "\r\n".join(keep + ["m=video 9 UDP/TLS/RTP/SAVPF 0", mid])


async def test_trickled_candidates_join_the_session_and_video_flows(gw) -> None:
    """The offer carries no candidates at all: video flows only because PATCH delivered them."""
    viewer = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
    token = gw.token("officer")
    try:
        viewer.pc.addTransceiver("video", direction="recvonly")

        @viewer.pc.on("track")
        def _on_track(track) -> None:
            import asyncio

            viewer._reader = asyncio.create_task(viewer._read(track))

        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        full = viewer.pc.localDescription.sdp
        candidates = [line for line in full.splitlines() if line.startswith("a=candidate:")]
        assert candidates
        bearer = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=15, headers=bearer) as client:
            created = await client.post(
                f"/whep/{CAMERA}", content=without_candidates(full), headers={"Content-Type": "application/sdp"}
            )
            assert created.status_code == 201, created.text
            location, etag = created.headers["location"], created.headers["etag"]
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=created.text, type="answer"))
            frag = candidate_fragment(full)
            body = "\r\n".join([frag, *candidates, "a=end-of-candidates"]) + "\r\n"
            sdpfrag = {"Content-Type": "application/trickle-ice-sdpfrag"}

            # attacker's side first: none of these changes the session
            r = await client.patch(location, content=body, headers=sdpfrag)
            assert r.status_code == 428 and r.json()["error"] == "precondition_required"
            r = await client.patch(location, content=body, headers={**sdpfrag, "If-Match": '"stale"'})
            assert r.status_code == 412 and r.json()["error"] == "precondition_failed"
            r = await client.patch(location, content=body, headers={"Content-Type": "text/plain", "If-Match": etag})
            assert r.status_code == 415
            r = await client.patch(location, content=body, headers={**sdpfrag, "If-Match": "*"})
            assert r.status_code == 422 and r.json()["error"] == "ice_restart_unsupported"
            restart = body.replace(frag.splitlines()[0], "a=ice-ufrag:newufrag1")
            r = await client.patch(location, content=restart, headers={**sdpfrag, "If-Match": etag})
            assert r.status_code == 422 and r.json()["error"] == "ice_restart_unsupported"
            r = await client.patch(location, content="a=bogus\r\n", headers={**sdpfrag, "If-Match": etag})
            assert r.status_code == 400 and r.json()["error"] == "bad_sdpfrag"
            async with gw.client("admin") as other:
                r = await other.patch(location, content=body, headers={**sdpfrag, "If-Match": etag})
                assert r.status_code in (403, 404), r.status_code
            async with httpx.AsyncClient(base_url=gw.base_url) as anonymous:
                r = await anonymous.patch(location, content=body, headers={**sdpfrag, "If-Match": etag})
                assert r.status_code == 401
            assert len(gw.gateway.sessions) == 1

            r = await client.patch(location, content=body, headers={**sdpfrag, "If-Match": etag})
            assert r.status_code == 204, r.text
            assert r.headers["etag"] == etag
            session = gw.gateway.sessions.get(location.rsplit("/", 1)[1])
            known = {(c.ip, c.port) for c in ice_transport(session.pc).getRemoteCandidates()}
            for line in candidates:
                fields = line.split()
                assert (fields[4], int(fields[5])) in known, (line, known)
            await viewer.wait_frames(5, timeout=10)
            more = await client.patch(location, content=body, headers={**sdpfrag, "If-Match": etag})
            assert more.status_code == 422 and more.json()["error"] == "end_of_candidates"
    finally:
        await viewer.close()


# ---------------------------------------------------------------- 503 with Retry-After


async def test_a_full_node_answers_503_with_retry_after_and_audits_it(site_file, run_gateway) -> None:
    gw = await run_gateway(with_gateway_keys(site_file(), "max_view_sessions = 1\n"))
    await declare(gw)
    first = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
    second = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
    try:
        assert (await first.start()).status_code == 201
        refused = await second.start()
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"] == "node_full" and int(refused.headers["retry-after"]) > 0
        denied = [e for e in gw.gateway.audit.entries(limit=1000) if e.event_type == "view.denied"]
        assert denied and denied[-1].reason == "node_full"
        metrics = gw.gateway.metrics.whep_requests.labels("busy")._value.get()
        assert metrics == 1
        assert len(gw.gateway.sessions) == 1
        assert (await first.delete()).status_code == 204
        third = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
        assert (await third.start()).status_code == 201  # room again
        await third.close()
    finally:
        await first.close()
        await second.close()


async def test_a_camera_that_is_starting_answers_503_with_retry_after(site_file, run_gateway) -> None:
    """The camera accepts the connection and has not answered yet (a camera booting)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the handshake; nothing ever answers
        port = silent.getsockname()[1]
        path = site_file({f"synthetic://{CAMERA}?w=640&h=360&fps=15": f"rtsp://127.0.0.1:{port}/booting"})
        gw = await run_gateway(path)
        await declare(gw)
        viewer = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
        try:
            refused = await viewer.start()
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "camera_starting" and int(refused.headers["retry-after"]) > 0
            denied = [e for e in gw.gateway.audit.entries(limit=1000) if e.event_type == "view.denied"]
            assert denied and denied[-1].reason == "camera_starting"
            assert len(gw.gateway.sessions) == 0
            assert gw.gateway.media.stats(CAMERA, "main")["viewers"] == 0
        finally:
            await viewer.close()


async def test_a_camera_that_is_down_keeps_the_session_for_its_return(site_file, run_gateway) -> None:
    """Not "starting": the connection is refused and ingest backs off. The session stays,
    as before, so video comes by itself when the camera returns (tests/api/test_camera_outage.py)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        path = site_file({f"synthetic://{CAMERA}?w=640&h=360&fps=15": f"rtsp://127.0.0.1:{port}/down"})
        gw = await run_gateway(path)
        await declare(gw)
        viewer = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
        try:
            assert (await viewer.start()).status_code == 201
            assert gw.gateway.media.stats(CAMERA, "main")["state"] in ("backoff", "reconnecting")
        finally:
            await viewer.close()


# ---------------------------------------------------------------- CORS


PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}


async def test_cors_preflight_from_a_listed_origin(gw) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url) as browser:
        r = await browser.options(f"/whep/{CAMERA}", headers={"Origin": WALL, **PREFLIGHT})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == WALL
    assert set(r.headers["access-control-allow-methods"].split(", ")) >= {"POST", "PATCH", "DELETE", "OPTIONS"}
    assert {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")} >= {
        "authorization",
        "content-type",
        "if-match",
    }
    exposed = {h.strip().lower() for h in r.headers["access-control-expose-headers"].split(",")}
    assert exposed >= {"location", "etag", "link", "retry-after"}
    assert "access-control-allow-credentials" not in r.headers
    assert "Origin" in r.headers["vary"]
    assert r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"


async def test_cors_preflight_from_an_unlisted_origin_gets_no_cors_headers(gw) -> None:
    async with httpx.AsyncClient(base_url=gw.base_url) as browser:
        for origin in ("https://evil.example", "https://wall.agency.example.evil.example", "null", WALL + ":444"):
            r = await browser.options(f"/whep/{CAMERA}", headers={"Origin": origin, **PREFLIGHT})
            assert not any(k.startswith("access-control-") for k in r.headers), (origin, dict(r.headers))
            posted = await browser.post(
                f"/whep/{CAMERA}",
                content=b"v=0",
                headers={"Origin": origin, "Authorization": f"Bearer {gw.token('officer')}"},
            )
            assert not any(k.startswith("access-control-") for k in posted.headers), origin
        other_route = await browser.options("/api/v1/cameras", headers={"Origin": WALL, **PREFLIGHT})
        assert "access-control-allow-origin" not in other_route.headers  # WHEP endpoints only


async def test_a_listed_origin_watches_with_a_bearer_token_and_its_cookies_are_ignored(gw) -> None:
    viewer = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
    try:
        viewer.pc.addTransceiver("video", direction="recvonly")
        await viewer.pc.setLocalDescription(await viewer.pc.createOffer())
        offer = viewer.pc.localDescription.sdp
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=15) as browser:
            # a cookie alone never opens video cross-origin, even with the CSRF header
            cookie_only = await browser.post(
                f"/whep/{CAMERA}",
                content=offer,
                headers={
                    "Origin": WALL,
                    "Content-Type": "application/sdp",
                    "Cookie": "sightline_session=anything",
                    "X-Requested-With": "sightline",
                },
            )
            assert cookie_only.status_code == 401, cookie_only.text
            assert cookie_only.headers["access-control-allow-origin"] == WALL
            r = await browser.post(
                f"/whep/{CAMERA}",
                content=offer,
                headers={
                    "Origin": WALL,
                    "Content-Type": "application/sdp",
                    "Authorization": f"Bearer {gw.token('officer')}",
                },
            )
            assert r.status_code == 201, r.text
            assert r.headers["access-control-allow-origin"] == WALL
            assert "etag" in r.headers["access-control-expose-headers"].lower()
            await viewer.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            ended = await browser.delete(
                r.headers["location"], headers={"Origin": WALL, "Authorization": f"Bearer {gw.token('officer')}"}
            )
            assert ended.status_code == 204 and ended.headers["access-control-allow-origin"] == WALL
    finally:
        await viewer.close()


def test_cors_origins_and_session_limit_are_checked_at_load(site_file) -> None:
    for bad, message in (
        ('whep_cors_origins = ["*"]\n', "not an origin"),
        ('whep_cors_origins = ["https://wall.example/player"]\n', "not an origin"),
        ('whep_cors_origins = ["http://wall.example"]\n', "https"),
        ('whep_cors_origins = "https://wall.example"\n', "list of origins"),
        ('whep_cors_origins = ["http://127.0.0.1:8000"]\n', "own public_url"),
        ("max_view_sessions = 0\n", "max_view_sessions"),
        ("max_view_sessions = true\n", "max_view_sessions"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(with_gateway_keys(site_file(), bad))
    config = load_config(with_gateway_keys(site_file(), 'whep_cors_origins = ["http://localhost:8080"]\n'))
    assert config.whep_cors_origins == frozenset({"http://localhost:8080"}) and config.max_view_sessions == 200


# ---------------------------------------------------------------- DTLS with an RSA certificate


class RsaCertificate(RTCCertificate):
    """A viewer certificate as GStreamer's webrtcbin makes it: RSA 2048, with OpenSSL's
    usual ECDHE suites for both key types (the viewer is the DTLS server: the offer says
    actpass and the gateway answers active)."""

    @classmethod
    def make(cls) -> RsaCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(key=key, cert=generate_certificate(key))  # type: ignore[arg-type]

    def _create_ssl_context(self, srtp_profiles):  # type: ignore[no-untyped-def]
        ctx = super()._create_ssl_context(srtp_profiles)
        ctx.set_cipher_list(b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-SHA")
        return ctx


async def test_a_viewer_with_an_rsa_dtls_certificate_receives_video(gw) -> None:
    viewer = WhepViewer(gw.base_url, CAMERA, gw.token("officer"))
    certificate = RsaCertificate.make()
    viewer.pc._RTCPeerConnection__certificates = [certificate]  # the TEST viewer's certificate only
    try:
        answer = await viewer.start()
        assert answer.status_code == 201, answer.text
        offer = viewer.pc.localDescription.sdp
        assert certificate.getFingerprints()[0].value.lower() in offer.lower()
        await viewer.wait_frames(5, timeout=10)
        assert isinstance(certificate._cert.public_key(), rsa.RSAPublicKey)
    finally:
        await viewer.close()


def test_the_gateways_dtls_offers_rsa_suites_as_well_as_ecdsa() -> None:
    """What the test above depends on (without it the handshake fails and no frame comes:
    the gateway is the DTLS client and aiortc offers only ECDHE-ECDSA suites)."""
    from OpenSSL import SSL

    from camera_adapters import aiortc_patch

    aiortc_patch.install()
    from aiortc.rtcdtlstransport import SRTP_AES128_CM_SHA1_80

    ctx = RTCCertificate.generateCertificate()._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    offered = SSL.Connection(ctx).get_cipher_list()
    assert "ECDHE-RSA-AES128-GCM-SHA256" in offered and "ECDHE-ECDSA-AES128-GCM-SHA256" in offered
