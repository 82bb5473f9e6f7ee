"""Two gateway nodes with ``[gateway] redis`` share one RTSP session per camera stream:
the node holding the camera's lease pulls it, the other relays it from that node; when
the holder stops, the other node takes the camera over without its viewers renegotiating.
The relay endpoint is node-to-node only (signed) and not in the OpenAPI document."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from camera_adapters.relay import HEARTBEAT, MAGIC, decode_units, encode_unit
from gateway.app import create_app
from gateway.config import ConfigError, load_config
from gateway.media.camera_leases import LEASE_TTL_MS, NODE_HEADER, NONCE_HEADER, relay_headers, relay_key, verify_relay
from gateway.runtime import Gateway
from tests.conftest import free_port, serve_app
from tests.web_helpers import LOCKDOWN
from tests.whep_client import WhepViewer

SOURCE_FPS = 15


@dataclasses.dataclass
class Node:
    gateway: Gateway
    base_url: str
    server: uvicorn.Server
    task: asyncio.Task

    def token(self, user: str) -> str:
        return self.gateway.tokens.issue(user, ttl=600, amr=("pwd", "otp", "mfa"))[0]

    def client(self, user: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token(user)}"} if user else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=15)

    async def stop(self) -> None:
        if not self.task.done():
            self.server.should_exit = True
            await asyncio.wait_for(self.task, 30)


@pytest.fixture
async def nodes(tmp_path: Path, site_file, redis_server):
    """``start(path, name)``: a node of that site file with its own internal URL and name."""
    started: list[Node] = []

    async def start(path: Path, name: str) -> Node:
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        config = dataclasses.replace(load_config(path), node=name, internal_url=base_url)
        gateway = Gateway(config)
        server, task, _ = await serve_app(create_app(gateway), port)
        node = Node(gateway, base_url, server, task)
        started.append(node)
        return node

    yield start
    for node in started:
        await node.stop()


def two_node_site(site_file, redis_server, pg_url: str, camera_url: str) -> Path:
    return site_file(
        {
            'node = "demo"': f'node = "demo"\nredis = "{redis_server.url}"\ndatabase = "{pg_url}"',
            "synthetic://hs-front?w=640&h=360&fps=15": camera_url,
        }
    )


async def activate(node: Node) -> str:
    async with node.client("admin") as admin:
        created = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
        confirmed = await admin.post(f"/api/v1/emergencies/{created['id']}/confirm")
        assert confirmed.status_code == 200, confirmed.text
    return created["id"]


async def fps_of(viewer: WhepViewer, seconds: float = 3.0) -> float:
    start = time.monotonic()
    await asyncio.sleep(seconds)
    return viewer.frames_between(start, time.monotonic()) / seconds


async def wait_for(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - start


@pytest.mark.rtsp
@pytest.mark.parametrize("holder_end", ["clean_stop", "lease_left_behind"])
async def test_two_nodes_share_one_rtsp_session_and_fail_over(
    site_file, redis_server, pg_url, nodes, rtsp_camera, monkeypatch, holder_end
) -> None:
    """``lease_left_behind``: node A stops without deleting its lease, as a node that dies
    does; node B then takes the camera over once the lease expires."""
    camera = rtsp_camera.start(codec="h264", width=320, height=180, fps=SOURCE_FPS)
    path = two_node_site(site_file, redis_server, pg_url, camera.url)
    a = await nodes(path, "node-a")
    b = await nodes(path, "node-b")
    await activate(a)

    on_a = WhepViewer(a.base_url, "hs-front", a.token("officer"))
    on_b = WhepViewer(b.base_url, "hs-front", b.token("officer"))
    try:
        assert (await on_a.start()).status_code == 201
        await on_a.wait_frames(5, timeout=20)
        assert (await on_b.start()).status_code == 201
        await on_b.wait_frames(5, timeout=20)
        rate_a, rate_b = await asyncio.gather(fps_of(on_a), fps_of(on_b))
        assert rate_a >= 0.8 * SOURCE_FPS and rate_b >= 0.8 * SOURCE_FPS, (rate_a, rate_b)
        assert camera.clients == 1 and camera.sessions == 1, (camera.clients, camera.sessions)

        lease = redis_server.client().get("sightline:lincoln-d42:camera:hs-front:main")
        assert lease == a.base_url
        assert a.gateway.media.stats("hs-front", "main")["ingest"] == "camera"
        assert b.gateway.media.stats("hs-front", "main")["ingest"] == "relay:node-a"
        async with b.client("admin") as admin:
            health = (await admin.get("/api/v1/cameras/hs-front")).json()["health"]["main"]
            assert health["ingest"] == "relay:node-a" and health["state"] == "live"
            metrics = (await admin.get("/metrics")).text
        assert 'sightline_camera_ingest{camera="hs-front",ingest="relay:node-a",stream="main"} 1.0' in metrics

        # Node A goes away: node B's viewer keeps its peer connection and gets frames again.
        frames_before = len(on_b.frame_times)
        if holder_end == "lease_left_behind":
            monkeypatch.setattr(a.gateway.leases, "release", lambda *_args: None)
        stopped = time.monotonic()
        await a.stop()
        ttl = LEASE_TTL_MS / 1000
        took = await wait_for(
            lambda: (
                any(t > stopped + 0.2 for t in on_b.frame_times[frames_before:])
                and on_b.frame_times[-1] > time.monotonic() - 0.5
            ),
            ttl + 8,  # the lease runs out, then node B opens the camera; slack for a loaded machine
            "node B's viewer got frames again",
        )
        print(f"failover ({holder_end}): frames again on node B {took:.2f} s after node A began stopping")
        assert on_b.pc.connectionState == "connected"
        assert await fps_of(on_b, 2.0) >= 0.8 * SOURCE_FPS
        assert b.gateway.media.stats("hs-front", "main")["ingest"] == "camera"
        assert redis_server.client().get("sightline:lincoln-d42:camera:hs-front:main") == b.base_url
        await wait_for(lambda: camera.sessions == 1, 5, "one RTSP session open (node B's)")
        assert camera.clients == 2  # node A's, then node B's
    finally:
        await asyncio.gather(on_a.close(), on_b.close())

    audit = b.gateway.audit.entries(limit=10_000)
    started = [e for e in audit if e.event_type == "relay.started" and e.object == "camera:hs-front"]
    ended = [e for e in audit if e.event_type == "relay.ended" and e.object == "camera:hs-front"]
    # Node B's relay from node A, as node A recorded it. Both nodes preload the camera when
    # the emergency activates, so on a loaded machine node B may win the lease first and
    # node A relay from it briefly before the holder settles: entries naming node A may be there too.
    assert started and ended and "node:node-b" in {e.actor_id for e in started} & {e.actor_id for e in ended}
    assert all(e.details.get("stream") for e in started + ended)


@pytest.mark.rtsp
async def test_holder_that_cannot_reach_the_camera_gives_it_up(
    site_file, redis_server, pg_url, nodes, rtsp_camera, monkeypatch
) -> None:
    """Node A's network path to the camera is broken (its site file has a dead address);
    node B can reach it. A takes the lease first, gets no video, gives the lease up; B takes
    the camera and A's own viewer then watches through a relay from B."""
    import gateway.media.camera_leases as leases

    monkeypatch.setattr(leases, "GIVE_UP_SECONDS", 3.0)
    monkeypatch.setattr(leases, "STAND_ASIDE_SECONDS", 6.0)
    camera = rtsp_camera.start(codec="h264", width=320, height=180, fps=SOURCE_FPS)
    path_b = two_node_site(site_file, redis_server, pg_url, camera.url)
    path_a = path_b.with_name("site-a.toml")
    path_a.write_text(path_b.read_text().replace(camera.url, f"rtsp://127.0.0.1:{free_port()}/gone"))
    a = await nodes(path_a, "node-a")
    b = await nodes(path_b, "node-b")
    await activate(a)
    on_a = WhepViewer(a.base_url, "hs-front", a.token("officer"))
    on_b = WhepViewer(b.base_url, "hs-front", b.token("officer"))
    try:
        assert (await on_a.start()).status_code == 201
        await wait_for(
            lambda: a.gateway.media.stats("hs-front", "main")["ingest"] == "camera", 10, "node A holds the camera"
        )
        assert (await on_b.start()).status_code == 201
        await on_b.wait_frames(5, timeout=25)
        await on_a.wait_frames(5, timeout=25)
        assert redis_server.client().get("sightline:lincoln-d42:camera:hs-front:main") == b.base_url
        assert b.gateway.media.stats("hs-front", "main")["ingest"] == "camera"
        assert a.gateway.media.stats("hs-front", "main")["ingest"] == "relay:node-b"
        assert camera.sessions == 1
    finally:
        await asyncio.gather(on_a.close(), on_b.close())


async def test_relay_endpoint_refuses_unsigned_and_is_not_documented(site_file, redis_server, pg_url, nodes) -> None:
    path = site_file({'node = "demo"': f'node = "demo"\nredis = "{redis_server.url}"\ndatabase = "{pg_url}"'})
    a = await nodes(path, "node-a")
    key = relay_key(a.gateway.config.secrets_dir)
    url = "/internal/v1/relay/hs-front/main"
    async with httpx.AsyncClient(base_url=a.base_url, timeout=10) as http:
        for headers in (
            {},
            {NODE_HEADER: "node-b"},
            relay_headers(b"not the key" * 3, "GET", url, "node-b"),
            relay_headers(key, "GET", url, "node-b", now=time.time() - 120),  # stale
            relay_headers(key, "GET", "/internal/v1/relay/hs-gym/main", "node-b"),  # another path
            {**relay_headers(key, "GET", url, "node-b"), NODE_HEADER: "node-c"},  # another node
            {**relay_headers(key, "GET", url, "node-b"), NONCE_HEADER: "0" * 32},  # another nonce
        ):
            r = await http.get(url, headers=headers)
            assert r.status_code == 401, (headers.keys(), r.text)
            assert set(r.json()) == {"error", "detail"}
        # signed, but this node does not ingest the camera: refused, not relayed
        signed = relay_headers(key, "GET", url, "node-b")
        r = await http.get(url, headers=signed)
        assert r.status_code == 409 and r.json()["error"] == "not_owner"
        replayed = await http.get(url, headers=signed)  # the same nonce again
        assert replayed.status_code == 401 and set(replayed.json()) == {"error", "detail"}
        doc = (await http.get("/openapi.json")).json()
    assert not any(p.startswith("/internal") for p in doc["paths"])
    assert "/internal/" not in str(doc) and NODE_HEADER not in str(doc)


def test_relay_signature_and_framing_roundtrip(tmp_path: Path) -> None:
    key = relay_key(tmp_path / "secrets")
    assert key == relay_key(tmp_path / "secrets") and len(key) == 32
    headers = relay_headers(key, "GET", "/internal/v1/relay/x/main", "n1")
    assert verify_relay(key, "GET", "/internal/v1/relay/x/main", headers) == ("n1", headers[NONCE_HEADER])
    assert verify_relay(key, "POST", "/internal/v1/relay/x/main", headers) is None
    assert key.hex() not in str(headers)

    stream = (
        MAGIC
        + encode_unit(90_000, True, b"\x00\x00\x00\x01\x67abc")
        + HEARTBEAT
        + encode_unit(93_000, False, b"\x00\x01x")
    )
    body = io.BytesIO(stream)
    units = list(decode_units(lambda n: body.read(min(n, 3))))  # short reads, as from a socket
    assert [u and (u.pts, u.keyframe, u.data) for u in units] == [
        (90_000, True, b"\x00\x00\x00\x01\x67abc"),
        None,
        (93_000, False, b"\x00\x01x"),
    ]


def test_internal_url_is_validated(site_file) -> None:
    good = site_file({'node = "demo"': 'node = "demo"\ninternal_url = "http://10.0.0.5:8000/"'})
    assert load_config(good).internal_url == "http://10.0.0.5:8000"
    assert load_config(site_file()).internal_url is None
    for bad in ('"ftp://x"', '"http://"', '"http://u:p@host:1"', "3", '""'):
        path = site_file({'node = "demo"': f'node = "demo"\ninternal_url = {bad}'})
        with pytest.raises(ConfigError, match="internal_url"):
            load_config(path)


def test_leased_source_tells_its_inner_source_whether_anyone_needs_it(redis_server) -> None:
    """The inner source (camera or relay) is what backs off, so the hub's word must reach it,
    also when it is made after the hub spoke."""
    from camera_adapters.source import Source, SourceSink
    from gateway.media.camera_leases import CameraLeases, LeasedSource

    made: list[Source] = []

    class Idle(Source):
        def run(self) -> None:
            self.sleep(60)

    def make_inner(url: str, sink: SourceSink) -> Source:
        made.append(Idle(url, sink))
        return made[-1]

    class Sink:
        def on_unit(self, unit) -> None: ...

        def on_state(self, state: str, detail: str = "") -> None: ...

    leases = CameraLeases(redis_server.client(), "needed-test", "http://127.0.0.1:9", "n1", b"k" * 32)
    source = LeasedSource("cam", "main", "rtsp://127.0.0.1:9/x", Sink(), leases, make_inner)
    source.set_needed(True)
    source.start()
    try:
        deadline = time.monotonic() + 10
        while not made:
            assert time.monotonic() < deadline, "the lease holder never started its camera source"
            time.sleep(0.02)
        assert made[0].needed
        source.set_needed(False)
        assert not made[0].needed
        source.set_needed(True)
        assert made[0].needed
    finally:
        source.stop()
        assert source.join(10)


@pytest.mark.rtsp
async def test_lone_holder_keeps_the_camera_through_an_outage(
    site_file, redis_server, pg_url, nodes, rtsp_camera, monkeypatch
) -> None:
    """With no other node relaying from it there is nobody to hand the camera to: the holder
    keeps retrying it (as without Redis) instead of standing aside, so its viewer has video
    within 3 s of the camera's return even after an outage longer than GIVE_UP_SECONDS."""
    import gateway.media.camera_leases as leases

    monkeypatch.setattr(leases, "GIVE_UP_SECONDS", 2.0)
    monkeypatch.setattr(leases, "STAND_ASIDE_SECONDS", 30.0)
    camera = rtsp_camera.start(codec="h264", width=320, height=180, fps=SOURCE_FPS)
    node = await nodes(two_node_site(site_file, redis_server, pg_url, camera.url), "node-a")
    await activate(node)
    viewer = WhepViewer(node.base_url, "hs-front", node.token("officer"))
    try:
        assert (await viewer.start()).status_code == 201
        await viewer.wait_frames(5, timeout=15)
        await asyncio.to_thread(camera.stop)
        await asyncio.sleep(6.0)  # two renewals past GIVE_UP_SECONDS
        await asyncio.to_thread(camera.restart)
        returned = time.monotonic()
        await wait_for(lambda: viewer.frames_between(returned, time.monotonic()) > 0, 3.0, "video after the return")
        assert redis_server.client().get("sightline:lincoln-d42:camera:hs-front:main") == node.base_url
    finally:
        await viewer.close()
