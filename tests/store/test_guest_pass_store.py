"""Guest passes on both stores (SQLite and a real PostgreSQL): the same rules, the link and
PIN stored only as hashes, the link hash unique, and a pass's state surviving a reopen."""

from __future__ import annotations

from dataclasses import replace

import pytest

from emergency.guest_passes import GuestPasses, PassRefused, PassState
from tests.store.test_pg_store import active, world

GUEST = {"name": "Dana Ortiz", "badge": "4471", "agency": "County Sheriff"}


def test_a_pass_round_trips_and_its_rules_hold(store_backend) -> None:
    w = world(store_backend)
    passes = GuestPasses(w.store, w.audit, w.clock, w.svc)
    e = active(w)
    issued = passes.issue(w.dispatcher, e.id)
    stored = w.store.get_guest_pass(issued.guest_pass.id)
    assert stored == issued.guest_pass
    assert w.store.guest_pass_by_link(issued.guest_pass.link_hash) == stored
    assert w.store.unfinished_guest_passes() == [stored]
    with pytest.raises(PassRefused):
        passes.redeem(issued.link_secret, "bad", **GUEST)
    p = passes.redeem(issued.link_secret, issued.pin, **GUEST)
    reopened = store_backend.open()
    again = reopened.get_guest_pass(p.id)
    assert again == p and again.state is PassState.REDEEMED and again.wrong_pins == 1
    assert reopened.guest_passes_of_emergency(e.id) == [p]
    w.svc.all_clear(w.admin, e.id)
    passes.tick()
    assert w.store.get_guest_pass(p.id).state is PassState.ENDED
    assert w.store.unfinished_guest_passes() == []


def test_the_link_hash_is_unique(store_backend) -> None:
    w = world(store_backend)
    passes = GuestPasses(w.store, w.audit, w.clock, w.svc)
    e = active(w)
    first = passes.issue(w.admin, e.id).guest_pass
    with pytest.raises(Exception):  # noqa: B017 - the driver's own integrity error
        w.store.insert_guest_pass(replace(first, id="another"))
