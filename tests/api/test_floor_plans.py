"""Building floor plans: the site file's ``floor_plan``, checked at load, and
GET /api/v1/buildings/{id}/floor-plan over real HTTP, for whoever may see one of the
building's cameras now (or administers it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergency.sample import _CAMERAS, FLOOR_PLAN_SIZE, sample_floor_plans
from gateway.api.floor_plans import MAX_BYTES
from gateway.config import ConfigError, load_config
from tests.web_helpers import LOCKDOWN, start_web_gateway, stop

HS_PLAN = 'floor_plan = "plans/lincoln-hs.svg"'
MS_PLAN = 'floor_plan = "plans/washington-ms.svg"\n'
HS_URL = "/api/v1/buildings/lincoln-hs/floor-plan"
MS_URL = "/api/v1/buildings/washington-ms/floor-plan"
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
# The smallest PNG there is: one transparent pixel.
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def test_sample_cameras_sit_in_rooms_of_their_zone() -> None:
    """The demo plans agree with the camera positions: each lies in a room of its zone."""
    width, height = FLOOR_PLAN_SIZE
    plans = sample_floor_plans()
    for camera, _name, building, zone, _privacy, (fx, fy) in _CAMERAS:
        x, y = fx * width, fy * height
        rooms = [r for r in plans[building] if r[2] < x < r[2] + r[4] and r[3] < y < r[3] + r[5]]
        assert zone in {r[1] for r in rooms}, (camera, zone, rooms)
    for building, rooms in plans.items():
        labels = " ".join(r[0] for r in rooms)
        for word in ("Exterior", "entrance", "Hallway", "Gym", "Office", "Nurse", "Time-out"):
            assert word in labels, (building, word)


# ------------------------------------------------------------------ the site file


def _load_with(site_file, value: str, *, make=None) -> str:
    path = site_file()
    if make:
        make(path.parent)
    path.write_text(path.read_text().replace(HS_PLAN, f"floor_plan = {value!r}".replace("'", '"')))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "buildings[0].floor_plan: building 'lincoln-hs'" in message, message
    return message


def test_demo_plans_load(site_file) -> None:
    config = load_config(site_file())
    assert {b.floor_plan for b in config.site.buildings.values()} == {"plans/lincoln-hs.svg", "plans/washington-ms.svg"}
    plan = config.floor_plans["lincoln-hs"]
    assert plan.media_type == "image/svg+xml" and plan.path == config.path.parent / "plans" / "lincoln-hs.svg"


def test_a_plan_may_not_leave_the_site_folder(site_file, tmp_path_factory) -> None:
    message = _load_with(site_file, "../outside.svg")
    assert "must stay inside the site file's folder" in message and "no '..'" in message
    assert "plans/lincoln-hs.svg" in message  # what to write instead
    assert "must stay inside" in _load_with(site_file, "plans/../../outside.svg")
    assert "must stay inside" in _load_with(site_file, "/etc/outside.svg")
    # Nor through a symbolic link inside the folder.
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "plan.svg"
    elsewhere.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    message = _load_with(site_file, "plans/link.svg", make=lambda d: (d / "plans" / "link.svg").symlink_to(elsewhere))
    assert "leads outside the site file's folder" in message and "copy the image into that folder" in message


def test_a_missing_plan_is_named(site_file) -> None:
    message = _load_with(site_file, "plans/lincon-hs.svg")
    assert "'plans/lincon-hs.svg' does not exist in" in message and "remove floor_plan" in message


def test_a_plan_must_be_an_image_file(site_file) -> None:
    message = _load_with(site_file, "plans/lincoln-hs.gif")
    assert "is not a floor plan image; use a .png, .jpg, .jpeg, .svg, .webp file" in message
    assert "not a floor plan image" in _load_with(site_file, "plans/lincoln-hs.svg.html")
    # The content must be what the name says.
    message = _load_with(
        site_file, "plans/fake.png", make=lambda d: (d / "plans" / "fake.png").write_text("<svg></svg>")
    )
    assert "is not a PNG image" in message and "export the plan as PNG" in message
    assert "is not a SVG image" in _load_with(
        site_file, "plans/photo.svg", make=lambda d: (d / "plans" / "photo.svg").write_bytes(PNG_1PX)
    )
    assert "is not a file" in _load_with(site_file, "plans/dir.svg", make=lambda d: (d / "plans" / "dir.svg").mkdir())
    assert "is empty" in _load_with(site_file, "plans/empty.svg", make=lambda d: (d / "plans" / "empty.svg").touch())


def test_a_plan_has_a_size_limit(site_file) -> None:
    def big(d: Path) -> None:
        (d / "plans" / "big.svg").write_bytes(b"<svg>" + b" " * MAX_BYTES + b"</svg>")

    message = _load_with(site_file, "plans/big.svg", make=big)
    assert "larger than 5 MB" in message and "export a smaller image" in message


def test_png_and_jpeg_plans_and_none(site_file) -> None:
    path = site_file()
    (path.parent / "plans" / "hs.PNG").write_bytes(PNG_1PX)
    (path.parent / "plans" / "ms.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 64)
    text = path.read_text()
    path.write_text(
        text.replace(HS_PLAN, 'floor_plan = "plans/hs.PNG"').replace(MS_PLAN, 'floor_plan = "plans/ms.jpg"\n')
    )
    plans = load_config(path).floor_plans
    assert (plans["lincoln-hs"].media_type, plans["washington-ms"].media_type) == ("image/png", "image/jpeg")
    path.write_text(text.replace(HS_PLAN + "\n", ""))
    config = load_config(path)
    assert config.site.buildings["lincoln-hs"].floor_plan is None and set(config.floor_plans) == {"washington-ms"}


# ------------------------------------------------------------------ over HTTP


@pytest.fixture
async def wg(tmp_path):
    # Washington MS without a plan: its administrators get a plain 404.
    gateway, server, task = await start_web_gateway(tmp_path, edit=lambda text: text.replace(MS_PLAN, ""))
    yield gateway
    await stop(server, task)


async def status(client, url: str = HS_URL) -> int:
    return (await client.get(url)).status_code


async def test_plan_follows_camera_access(wg) -> None:
    plan_bytes = (wg.data_dir / "plans" / "lincoln-hs.svg").read_bytes()
    officer_cookie = await wg.sign_in("officer")
    async with (
        wg.bearer("officer") as officer,
        wg.bearer("outsider") as outsider,
        wg.bearer("admin") as admin,
        wg.bearer("principal") as principal,
        wg.bearer("dispatcher") as dispatcher,
        wg.bearer("auditor") as auditor,
        officer_cookie,
    ):
        # No emergency: the officer sees no camera of the building, so no plan either.
        r = await officer.get(HS_URL)
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
        assert "Lincoln High School" in r.json()["detail"]
        assert await status(officer_cookie) == 403
        assert await status(dispatcher) == 403

        # Administrators of the building see it any time; the principal only their own.
        r = await admin.get(HS_URL)
        assert r.status_code == 200 and r.content == plan_bytes
        assert await status(principal) == 200
        r = await principal.get(MS_URL)
        assert r.status_code == 403 and set(r.json()) == {"error", "detail"}
        r = await admin.get(MS_URL)  # a building without a plan
        assert r.status_code == 404 and "Washington Middle School has no floor plan image" in r.json()["detail"]
        r = await admin.get("/api/v1/buildings/nowhere/floor-plan")
        assert r.status_code == 404 and r.json() == {
            "error": "not_found",
            "detail": "no building 'nowhere' in this district",
        }

        # LOCKDOWN at Lincoln High: the officer (bearer or the page's cookie) now sees it.
        e = (await admin.post("/api/v1/emergencies", json=LOCKDOWN)).json()
        assert (await admin.post(f"/api/v1/emergencies/{e['id']}/confirm")).status_code == 200
        for client in (officer, officer_cookie):
            r = await client.get(HS_URL)
            assert r.status_code == 200, r.text
            assert r.content == plan_bytes
            assert r.headers["content-type"] == "image/svg+xml"
            assert r.headers["cache-control"] == "private, max-age=300"
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["content-security-policy"] == SVG_POLICY
            assert await status(client, MS_URL) == 403  # nothing shared there
        # The camera list tells the page where the plan is.
        cameras = (await officer.get("/api/v1/cameras")).json()
        assert cameras and {c["floor_plan"] for c in cameras} == {HS_URL}
        assert {c["floor_plan"] for c in (await admin.get("/api/v1/cameras")).json()} == {HS_URL, None}
        # Not for an agency outside the agreement, nor without a second factor.
        assert await status(outsider) == 403
        token = wg.gateway.tokens.issue("officer", ttl=600, amr=("pwd",))[0]
        async with wg.client(headers={"Authorization": f"Bearer {token}"}) as no_mfa:
            assert await status(no_mfa) == 403
        assert await status(auditor) == 200  # auditors see camera places (GET /api/v1/cameras) too

        # All clear: the officer's access, and the plan with it, ends.
        assert (await admin.post(f"/api/v1/emergencies/{e['id']}/all-clear")).status_code == 200
        assert await status(officer) == 403
        assert await status(officer_cookie) == 403

    refused = [
        x
        for x in wg.gateway.audit.entries(limit=10_000)
        if x.event_type == "permission.denied" and x.object == "building:lincoln-hs"
    ]
    assert {x.actor_id for x in refused} >= {"officer", "outsider"}
    # A dispatcher never may see a floor plan: the route's guard refuses it (gateway/identity/guards.py).
    assert any(
        x.event_type == "permission.denied" and x.actor_id == "dispatcher" and x.object == f"http:GET {HS_URL}"
        for x in wg.gateway.audit.entries(limit=10_000)
    )
    assert wg.gateway.audit.verify().ok


async def test_plan_needs_a_caller(wg) -> None:
    async with wg.client() as anon:
        r = await anon.get(HS_URL)
        assert r.status_code == 401 and set(r.json()) == {"error", "detail"}
        r = await anon.get(HS_URL, headers={"Authorization": "Bearer nonsense"})
        assert r.status_code == 401


async def test_a_plan_changed_on_disk_is_not_served(wg) -> None:
    """Checked again when served: a plan swapped for a symlink out of the folder is refused."""
    plan = wg.data_dir / "plans" / "lincoln-hs.svg"
    outside = wg.data_dir.parent / f"{wg.data_dir.name}-outside.svg"
    outside.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    plan.unlink()
    plan.symlink_to(outside)
    async with wg.bearer("admin") as admin:
        r = await admin.get(HS_URL)
        assert r.status_code == 503 and r.json()["error"] == "floor_plan_unavailable"
        assert "outside" not in r.json()["detail"]  # the file system stays private
