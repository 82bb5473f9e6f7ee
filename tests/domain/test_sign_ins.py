"""Sign-ins (emergency.sign_ins): what every token and session hangs on. An ended or
expired sign-in stays ended (no renewal brings it back), revoking a person ends all of
theirs and only theirs, and the same rules hold in memory and in SQLite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emergency.clock import FakeClock
from emergency.live_views import LiveView
from emergency.sign_ins import EXPIRED, SignIns
from emergency.sqlite_store import SqliteStore
from tests.memory_store import MemoryStore


@pytest.fixture(params=["memory", "sqlite"])
def world(request, tmp_path):
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    clock = FakeClock(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
    yield SignIns(store, clock), clock, store
    if request.param == "sqlite":
        store.close()


def test_a_sign_in_runs_out_unless_renewed_and_renewal_cannot_revive_it(world) -> None:
    sign_ins, clock, _ = world
    record = sign_ins.open("officer", method="password+totp", mfa=True, ttl=900)
    assert sign_ins.get(record.id) == record and record.live(clock.now())
    clock.advance(600)
    renewed = sign_ins.renew(record.id, 900)
    assert renewed is not None and renewed.expires == clock.now() + timedelta(seconds=900)
    clock.advance(899)
    assert sign_ins.get(record.id).why_not_live(clock.now()) is None  # type: ignore[union-attr]
    clock.advance(1)
    assert sign_ins.get(record.id).why_not_live(clock.now()) == EXPIRED  # type: ignore[union-attr]
    assert sign_ins.renew(record.id, 900) is None  # too late: sign in again
    assert sign_ins.renew("made-up", 900) is None


def test_revoking_a_person_ends_all_their_sign_ins_and_nobody_elses(world) -> None:
    sign_ins, clock, _ = world
    mine = [sign_ins.open("agency:sub-1", method=m, mfa=True, ttl=3600) for m in ("oidc", "password+totp")]
    other = sign_ins.open("officer", method="password+totp", mfa=True, ttl=3600)
    ended = sign_ins.end_all("agency:sub-1", "access revoked by Pat", by="admin")
    assert sorted(r.id for r in ended) == sorted(r.id for r in mine)
    for r in mine:
        got = sign_ins.get(r.id)
        assert got is not None and got.why_not_live(clock.now()) == "access revoked by Pat" and got.ended_by == "admin"
        assert sign_ins.renew(r.id, 900) is None
    assert sign_ins.get(other.id).live(clock.now())  # type: ignore[union-attr]
    assert [r.id for r in sign_ins.live_of()] == [other.id]
    assert sign_ins.end_all("agency:sub-1", "again", by="admin") == []  # nothing left to end
    assert sign_ins.end(other.id, "signed out", by="officer") is not None
    assert sign_ins.end(other.id, "signed out", by="officer") is None  # once


def test_the_store_knows_which_sign_ins_have_video_playing_on_any_node(world) -> None:
    sign_ins, clock, store = world
    a = sign_ins.open("officer", method="password+totp", mfa=True, ttl=900)
    b = sign_ins.open("officer", method="password+totp", mfa=True, ttl=900)
    store.insert_live_view(
        LiveView(
            "s1", "node-b", "officer", "officer", "county-sheriff", "hs-front", "sub", "g1", None, clock.now(), a.id
        )
    )
    assert store.sign_ins_watching([a.id, b.id]) == {a.id}
    assert sign_ins.statuses([a.id, b.id, "x"]).keys() == {a.id, b.id}
