"""Mutual-aid guest passes against a real gateway: the pass works once, the guest watches
exactly that emergency's cameras over WebRTC (aiortc), and every attack is refused and
audited: replay, PIN guessing, an unknown link, a stale pass, use after the all-clear."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import httpx

from emergency.guest_passes import MAX_WRONG_PINS, link_hash
from gateway.identity.signin import SESSION_COOKIE
from tests.whep_client import WhepViewer

LOCKDOWN = {
    "building": "lincoln-hs",
    "action": "LOCKDOWN",
    "incident_type": "armed_intruder",
    "threat_basis": "Caller reports a person with a handgun in the east parking lot.",
}
GUEST = {"name": "Dana Ortiz", "badge": "4471", "agency": "County Sheriff"}


async def activate(admin: httpx.AsyncClient, building: str = "lincoln-hs") -> str:
    created = await admin.post("/api/v1/emergencies", json={**LOCKDOWN, "building": building})
    assert created.status_code == 201, created.text
    emergency = created.json()["id"]
    assert (await admin.post(f"/api/v1/emergencies/{emergency}/confirm")).json()["state"] == "active"
    return emergency


async def new_pass(client: httpx.AsyncClient, emergency: str) -> dict:
    r = await client.post(f"/api/v1/emergencies/{emergency}/guest-passes", json={})
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


def audited(gw, kind: str) -> list:
    return [e for e in gw.gateway.audit.entries(limit=100_000) if e.event_type == kind]


async def test_guest_watches_that_emergency_only_once_and_video_ends_at_all_clear(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    async with (
        gw.client("admin") as admin,
        gw.client("dispatcher") as dispatcher,
        httpx.AsyncClient(base_url=gw.base_url, timeout=15) as anyone,
    ):
        hs = await activate(admin)
        ms = await activate(admin, "washington-ms")  # another building's emergency at the same time
        issued = await new_pass(dispatcher, hs)
        assert issued["link"].startswith(f"{gw.gateway.config.public_url.rstrip('/')}/guest/")
        redeem = {"link": issued["link"], "pin": issued["pin"], **GUEST}
        r = await anyone.post("/api/v1/guest-passes/redeem", json=redeem)
        assert r.status_code == 200, r.text
        token = r.json()["token"]
        assert r.json()["shown_as"] == "mutual aid: County Sheriff" and r.json()["expires_in"] <= 15 * 60

        # the link and PIN work once: a replay is refused (and audited)
        again = await anyone.post("/api/v1/guest-passes/redeem", json=redeem)
        assert again.status_code == 410 and again.json()["error"] == "already_used"

        guest = {"Authorization": f"Bearer {token}"}
        cameras = {c["id"] for c in (await anyone.get("/api/v1/cameras", headers=guest)).json()}
        officer_view = {
            c["id"]
            for c in (
                await anyone.get("/api/v1/cameras", headers={"Authorization": f"Bearer {gw.token('officer')}"})
            ).json()
        }
        hs_cameras = {c for c in officer_view if c.startswith("hs-")}
        assert cameras == hs_cameras and cameras  # exactly the emergency's shared cameras
        assert not {c for c in cameras if c.startswith("ms-")}

        other = WhepViewer(gw.base_url, "ms-front", token)  # the other building's emergency: refused
        assert (await other.start()).status_code == 403
        await other.close()

        viewer = WhepViewer(gw.base_url, "hs-front", token)
        answer = await viewer.start()
        assert answer.status_code == 201, answer.text
        await viewer.wait_frames(5, timeout=10)

        unused = await new_pass(admin, hs)
        cleared = await admin.post(f"/api/v1/emergencies/{hs}/all-clear")
        cleared_at = time.monotonic()
        assert cleared.json()["state"] == "all_clear"
        await asyncio.sleep(2.0)
        late = viewer.frames_between(cleared_at + 1.0, time.monotonic())
        assert late == 0, f"{late} frames arrived more than 1 s after all-clear"
        await viewer.close()

        # the guest's credentials died with the emergency
        assert (await anyone.get("/api/v1/cameras", headers=guest)).status_code == 401
        after = WhepViewer(gw.base_url, "hs-front", token)
        assert (await after.start()).status_code == 401
        await after.close()
        # a pass made earlier and not used is refused after the all-clear
        r = await anyone.post(
            "/api/v1/guest-passes/redeem", json={**redeem, "link": unused["link"], "pin": unused["pin"]}
        )
        assert r.status_code == 410 and r.json()["error"] == "ended"

        # the disclosure record names the guest by name, badge and agency
        record = (await admin.get(f"/api/v1/emergencies/{hs}/disclosure")).json()
        assert record["guests"][0] | {"admitted_at": None} == {
            "account": f"guest:{issued['id']}",
            "name": "Dana Ortiz",
            "badge": "4471",
            "agency": "County Sheriff",
            "shown_as": "mutual aid: County Sheriff",
            "admitted_at": None,
        }
        [watcher] = [v for v in record["viewers"] if v["officer"] == f"guest:{issued['id']}"]
        assert watcher["name"] == "Dana Ortiz (badge 4471, mutual aid: County Sheriff)"
        assert "mutual aid: County Sheriff" in {a["name"] for a in record["agencies"]}
        assert "mutual aid: County Sheriff" in record["parent_notice_draft"]["recipient"]
        ms_record = (await admin.get(f"/api/v1/emergencies/{ms}/disclosure")).json()
        assert ms_record["guests"] == []
        # the auditor packet's timeline names the guest in plain words too
        packet = await admin.get(f"/api/v1/emergencies/{hs}/export", params={"format": "json"})
        assert packet.status_code == 200, packet.text
        texts = [t["text"] for t in packet.json()["timeline"]]
        assert any(t.startswith("Dana Ortiz (badge 4471, mutual aid: County Sheriff)") for t in texts), texts

    assert audited(gw, "guest_pass.created") and audited(gw, "guest_pass.redeemed")
    assert {e.details["why"] for e in audited(gw, "guest_pass.refused")} == {"already_used", "ended"}
    assert any("emergency" in e.details["why"] for e in audited(gw, "guest_pass.ended"))
    text = "".join(repr(e) for e in gw.gateway.audit.entries(limit=100_000))
    assert issued["pin"] not in text and issued["link"].rsplit("/", 1)[1] not in text


async def test_pin_guessing_kills_the_pass_and_a_source_is_limited(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    async with gw.client("admin") as admin, httpx.AsyncClient(base_url=gw.base_url, timeout=15) as anyone:
        hs = await activate(admin)
        issued = await new_pass(admin, hs)
        wrong = "000000" if issued["pin"] != "000000" else "111111"
        body = {"link": issued["link"], "pin": wrong, **GUEST}
        answers = [(await anyone.post("/api/v1/guest-passes/redeem", json=body)).json()["error"] for _ in range(5)]
        assert answers == ["wrong_pin"] * (MAX_WRONG_PINS - 1) + ["wrong_pin_limit"]
        right = await anyone.post("/api/v1/guest-passes/redeem", json={**body, "pin": issued["pin"]})
        assert right.status_code == 410 and right.json()["error"] == "too_many_wrong_pins"
        listed = (await admin.get(f"/api/v1/emergencies/{hs}/guest-passes")).json()
        assert listed[0]["state"] == "dead" and "pin" not in listed[0] and "link" not in listed[0]

        # guessing links from one address: refused, then limited without checking (429)
        codes = []
        for i in range(25):
            r = await anyone.post("/api/v1/guest-passes/redeem", json={**body, "link": f"guess-{i}"})
            codes.append(r.status_code)
        assert 404 in codes and codes[-1] == 429
        assert "retry-after" in r.headers
    reasons = [e.details["why"] for e in audited(gw, "guest_pass.refused")]
    assert reasons.count("wrong_pin") == 4 and "wrong_pin_limit" in reasons and "unknown_link" in reasons


async def test_a_stale_pass_is_refused(site_file, run_gateway) -> None:
    """15 minutes is the domain's rule (tests/domain/test_guest_passes.py, on a fake clock);
    here a pass aged in the database is refused over HTTP and recorded as expired."""
    gw = await run_gateway(site_file())
    async with gw.client("admin") as admin, httpx.AsyncClient(base_url=gw.base_url, timeout=15) as anyone:
        hs = await activate(admin)
        issued = await new_pass(admin, hs)
        store = gw.gateway.store
        p = store.guest_pass_by_link(link_hash(issued["link"].rsplit("/", 1)[1]))
        store.update_guest_pass(replace(p, expires_at=p.created_at - timedelta(seconds=1)))
        r = await anyone.post(
            "/api/v1/guest-passes/redeem", json={"link": issued["link"], "pin": issued["pin"], **GUEST}
        )
        assert r.status_code == 410 and r.json()["error"] == "expired"
    assert audited(gw, "guest_pass.expired")


async def test_who_may_give_passes(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    async with gw.client("admin") as admin:
        hs = await activate(admin)
        for user in ("officer", "auditor", "outsider"):
            async with gw.client(user) as c:
                assert (await c.post(f"/api/v1/emergencies/{hs}/guest-passes", json={})).status_code == 403
        async with gw.client("principal") as principal:  # a building administrator, in scope
            assert (await principal.post(f"/api/v1/emergencies/{hs}/guest-passes", json={})).status_code == 201


async def test_the_guest_form_signs_in_and_lands_on_the_viewer(site_file, run_gateway) -> None:
    gw = await run_gateway(site_file())
    async with gw.client("admin") as admin, httpx.AsyncClient(base_url=gw.base_url, timeout=15) as browser:
        hs = await activate(admin)
        issued = await new_pass(admin, hs)
        path = "/guest/" + issued["link"].rsplit("/", 1)[1]
        page = await browser.get(path)
        assert page.status_code == 200 and 'name="pin"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "<script>" not in page.text
        wrong = await browser.post(path, data={**GUEST, "pin": "x"})
        assert wrong.status_code == 403 and "wrong PIN" in wrong.text
        done = await browser.post(path, data={**GUEST, "pin": issued["pin"]})
        assert done.status_code == 303 and done.headers["location"] == "/view"
        assert SESSION_COOKIE in done.cookies
        view = await browser.get("/view")
        assert view.status_code == 200 and "mutual aid: County Sheriff" in view.text
        cameras = (await browser.get("/api/v1/cameras")).json()
        assert cameras and all(c["building"] == "lincoln-hs" for c in cameras)
        await admin.post(f"/api/v1/emergencies/{hs}/all-clear")
        assert (await browser.get("/api/v1/cameras")).status_code == 401
    [login] = [e for e in audited(gw, "auth.login") if e.actor_id == f"guest:{issued['id']}"]
    assert "mfa" in login.details["amr"]


async def test_the_link_is_texted_through_the_outbox_never_the_pin(site_file, run_gateway) -> None:
    """An SMS relay subscribed to guest_pass.sent gets the link (signed, like every
    delivery); a subscriber to every topic ("*") never does; the PIN goes nowhere."""
    import json

    from gateway.notifier import seal_secret
    from tests.api.test_notifier import Receiver
    from tests.conftest import free_port

    sms, cad = Receiver(free_port()), Receiver(free_port())
    sms.start()
    cad.start()
    try:
        path = site_file()
        secret = seal_secret(path, "relay-secret")
        path.write_text(
            path.read_text()
            + f'\n[[webhooks]]\nid = "sms"\nurl = "{sms.url}"\ntopics = ["guest_pass.sent"]\nsecret = "{secret}"\n'
            + f'\n[[webhooks]]\nid = "cad"\nurl = "{cad.url}"\ntopics = ["*"]\nsecret = "{secret}"\n'
        )
        gw = await run_gateway(path)
        async with gw.client("admin") as admin:
            hs = await activate(admin)
            r = await admin.post(f"/api/v1/emergencies/{hs}/guest-passes", json={"send_to": "+1 555 010 0199"})
            assert r.status_code == 201, r.text
            issued = r.json()
            assert issued["sent_to"] == "…0199"
            deadline = time.monotonic() + 5
            while not sms.requests and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            [delivery] = sms.requests
            body = json.loads(delivery.body)
            assert body["topic"] == "guest_pass.sent" and body["payload"]["to"] == "+1 555 010 0199"
            assert issued["link"] in body["payload"]["text"] and issued["pin"] not in delivery.body.decode()
            await asyncio.sleep(0.5)
            assert all(json.loads(x.body)["topic"] != "guest_pass.sent" for x in cad.requests)
            bad = await admin.post(f"/api/v1/emergencies/{hs}/guest-passes", json={"send_to": "not a number"})
            assert bad.status_code == 422 and bad.json()["error"] == "invalid"
        [sent] = audited(gw, "guest_pass.sent")
        assert sent.details["to"] == "…0199"
    finally:
        sms.stop()
        cad.stop()
