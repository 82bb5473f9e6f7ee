"""After a crash, the next start of a node closes the view sessions the crash cut off
(emergency.live_views): each gets ``view.ended`` with the crash reason and an end at the
node's last heartbeat, only the node's own sessions are touched, and a session closed
normally is never closed twice."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from emergency import disclosure
from emergency.audit import AuditEntry, AuditEvent, AuditLog, describe
from emergency.clock import FakeClock
from emergency.live_views import CRASH_REASON, HEARTBEAT_SECONDS, LiveView, LiveViews, crash_end
from emergency.model import Actor
from emergency.site import Role
from tests.memory_store import MemoryStore

OFFICER = Actor("officer", Role.OFFICER, "county-sheriff", (), True)


def view(session: str, node: str, started: datetime, camera: str = "hs-front") -> LiveView:
    return LiveView(session, node, "officer", "officer", "county-sheriff", camera, "sub", "g1", "10.0.0.9", started)


class Node:
    """One gateway node's live views over the shared store; a new Node is the next run."""

    def __init__(self, store: MemoryStore, clock: FakeClock, name: str) -> None:
        self.audit = AuditLog(store, clock, name)
        self.live = LiveViews(store, self.audit, clock, name)
        self.clock = clock

    def open(self, session: str, camera: str = "hs-front") -> LiveView:
        v = view(session, self.live.node, self.clock.now(), camera)
        self.live.started(v, actor=OFFICER, reason="grant g1")
        return v


def entries(store: MemoryStore) -> list[AuditEntry]:
    return store.audit_entries(limit=10_000)


def ended(store: MemoryStore) -> dict[str, AuditEntry]:
    return {e.details["session"]: e for e in entries(store) if e.event_type == AuditEvent.VIEW_ENDED}


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_crash_cut_session_ends_at_the_last_heartbeat(store: MemoryStore, clock: FakeClock) -> None:
    a = Node(store, clock, "node-a")
    first = a.open("s1")
    clock.advance(1)
    second = a.open("s2", "hs-hall-a")
    for _ in range(10):  # the ticker, every 0.2 s, for 2 s
        clock.advance(0.2)
        a.live.beat_if_due()
    clock.advance(HEARTBEAT_SECONDS - 2 + 0.01)
    assert a.live.beat_if_due()
    last_beat = clock.now()
    clock.advance(HEARTBEAT_SECONDS - 0.5)  # killed before the next beat
    killed = clock.now()
    clock.advance(120)  # down for two minutes

    restarted = Node(store, clock, "node-a")
    closed = restarted.live.close_orphans()
    assert [e.event_type for e in closed] == [
        AuditEvent.GATEWAY_STOPPED_UNEXPECTEDLY,
        AuditEvent.VIEW_ENDED,
        AuditEvent.VIEW_ENDED,
    ]
    summary = closed[0]
    assert summary.object == "node:node-a" and summary.reason == CRASH_REASON
    assert summary.details["last_heartbeat"] == last_beat.isoformat()
    assert summary.details["sessions"] == ["s1", "s2"]
    assert "had stopped unexpectedly" in describe(summary) and "2 viewing sessions" in describe(summary)

    by_session = ended(store)
    for v in (first, second):
        e = by_session[v.session]
        assert e.reason == CRASH_REASON and e.actor_id == "officer" and e.actor_role == "officer"
        assert e.actor_agency == "county-sheriff" and e.object == f"camera:{v.camera}"
        assert datetime.fromisoformat(e.details["ended"]) == last_beat
        assert datetime.fromisoformat(e.details["started"]) == v.started
        assert e.details["seconds"] == round((last_beat - v.started).total_seconds(), 3)
        assert timedelta(0) <= killed - last_beat <= timedelta(seconds=HEARTBEAT_SECONDS)
    assert store.live_views("node-a") == []
    assert restarted.live.close_orphans() == [], "a second start finds nothing left to close"


def test_the_disclosure_record_has_no_open_span_after_recovery(store: MemoryStore, clock: FakeClock) -> None:
    a = Node(store, clock, "node-a")
    a.open("s1")
    clock.advance(HEARTBEAT_SECONDS)
    a.live.beat_if_due()
    beat = clock.now()
    spans = disclosure.view_spans(entries(store), {"g1"})
    assert [s.end for s in spans[("officer", "hs-front", "county-sheriff")]] == [None]  # live, or cut off

    clock.advance(60)
    Node(store, clock, "node-a").live.close_orphans()
    spans = disclosure.view_spans(entries(store), {"g1"})
    [span] = spans[("officer", "hs-front", "county-sheriff")]
    assert span.end == beat and span.seconds == HEARTBEAT_SECONDS


def test_a_node_closes_only_its_own_sessions(store: MemoryStore, clock: FakeClock) -> None:
    a, b = Node(store, clock, "node-a"), Node(store, clock, "node-b")
    a.open("a1")
    b_view = b.open("b1")
    clock.advance(30)
    b.live.beat_if_due()

    Node(store, clock, "node-a").live.close_orphans()
    assert set(ended(store)) == {"a1"}
    assert store.live_views("node-b") == [b_view]
    assert store.last_heartbeat("node-b") == clock.now()


def test_a_session_closed_normally_is_not_closed_again(store: MemoryStore, clock: FakeClock) -> None:
    a = Node(store, clock, "node-a")
    v = a.open("s1")
    clock.advance(5)
    a.live.ended(v, actor=OFFICER, reason="viewer ended the session", ended=clock.now())
    assert len(a.live) == 0 and store.live_views("node-a") == []
    clock.advance(5)
    assert Node(store, clock, "node-a").live.close_orphans() == []
    assert [e.reason for e in ended(store).values()] == ["viewer ended the session"]
    assert not any(e.event_type == AuditEvent.GATEWAY_STOPPED_UNEXPECTEDLY for e in entries(store))


def test_a_failed_start_leaves_neither_entry_nor_row(store: MemoryStore, clock: FakeClock) -> None:
    """The row and its view.started entry commit together: a session the log shows is one
    the next start can close."""
    a = Node(store, clock, "node-a")
    a.open("s1")
    before = len(entries(store))
    with pytest.raises(Exception, match="exists"):
        a.open("s1")
    assert len(entries(store)) == before and len(store.live_views("node-a")) == 1


def test_the_heartbeat_beats_only_while_sessions_are_live(store: MemoryStore, clock: FakeClock) -> None:
    a = Node(store, clock, "node-a")
    clock.advance(10)
    assert not a.live.beat_if_due() and store.last_heartbeat("node-a") is None
    v = a.open("s1")
    assert store.last_heartbeat("node-a") == clock.now(), "opening a session beats"
    clock.advance(HEARTBEAT_SECONDS - 0.1)
    assert not a.live.beat_if_due()
    clock.advance(0.1)
    assert a.live.beat_if_due() and store.last_heartbeat("node-a") == clock.now()
    a.live.ended(v, actor=OFFICER, reason="viewer ended the session", ended=clock.now())
    clock.advance(HEARTBEAT_SECONDS * 3)
    assert not a.live.beat_if_due()


def test_crash_end_never_before_the_start_nor_after_now(clock: FakeClock) -> None:
    t0 = clock.now()
    v = view("s1", "node-a", t0)
    later = t0 + timedelta(seconds=9)
    assert crash_end(v, t0 + timedelta(seconds=4), later) == t0 + timedelta(seconds=4)
    assert crash_end(v, None, later) == t0, "no heartbeat: nothing proves it lasted"
    assert crash_end(v, t0 - timedelta(seconds=30), later) == t0, "a beat from an earlier run"
    assert crash_end(v, t0 + timedelta(hours=1), later) == later, "a clock that ran ahead"


def test_a_session_belongs_to_the_node_that_opens_it(store: MemoryStore, clock: FakeClock) -> None:
    a = Node(store, clock, "node-a")
    with pytest.raises(ValueError, match="node-b"):
        a.live.started(view("s1", "node-b", clock.now()), actor=OFFICER, reason=None)
