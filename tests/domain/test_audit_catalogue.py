"""The audit event catalogue (emergency/audit/events.py) is the only place an event type
is written, and every event type has the plain words the auditor reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from emergency.audit import AuditEntry, AuditEvent, Names, describe
from emergency.records import RecordKind

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "emergency" / "audit" / "events.py"
SHAPE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
VALUES = {e.value for e in AuditEvent}


def _sources() -> list[Path]:
    files = [p for d in ("emergency", "gateway", "web") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 50
    return [p for p in files if p != CATALOGUE]


def _is_audit_call(call: ast.Call) -> bool:
    """``<something audit>.append(...)`` / ``append_many`` / ``audit_entries_of_type(...)``."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr == "audit_entries_of_type":
        return True
    return func.attr in ("append", "append_many") and "audit" in ast.unparse(func.value).lower()


def problems_in(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in VALUES:
            found.append(f"{name}:{node.lineno}: {node.value!r} is an audit event type: use AuditEvent")
        if isinstance(node, ast.Call) and _is_audit_call(node) and node.args:
            first = node.args[0]
            literal = isinstance(first, ast.JoinedStr) or (
                isinstance(first, ast.Constant) and isinstance(first.value, str) and SHAPE.match(first.value)
            )
            if literal:
                found.append(f"{name}:{node.lineno}: event type written as a string: {ast.unparse(first)}")
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and key.value == "event_type"
                    and isinstance(value, ast.Constant | ast.JoinedStr)
                ):
                    found.append(f"{name}:{node.lineno}: event type written as a string: {ast.unparse(value)}")
    return found


def test_no_event_type_is_written_as_a_string_outside_the_catalogue():
    problems = [p for path in _sources() for p in problems_in(path.read_text(), str(path.relative_to(ROOT)))]
    assert problems == []


@pytest.mark.parametrize(
    "code",
    [
        'audit.append("view.started", actor=a)',
        'self._audit.append("made.up_type", actor_id="x")',
        'gw.audit.append(f"record.{kind}.refused", actor_id="x")',
        'store.audit_entries_of_type("config.loaded", limit=1)',
        'audit.append_many([{"event_type": "view.ended"}])',
        'if e.event_type == "snapshot.served": pass',
    ],
)
def test_the_guard_catches_a_literal(code):
    assert problems_in(code, "x.py")


def test_the_guard_lets_the_enum_and_other_strings_pass():
    code = (
        'audit.append(AuditEvent.VIEW_STARTED, actor=a)\nlines.append(f"{x}.y")\n'
        'logging.getLogger("sightline.audit")\nif e.event_type == AuditEvent.VIEW_ENDED: pass'
    )
    assert problems_in(code, "x.py") == []


def _referenced_members() -> set[str]:
    names = set()
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "AuditEvent"
                and node.attr.isupper()
            ):
                names.add(node.attr)
    return names


def test_every_event_type_the_code_uses_has_plain_words():
    used = _referenced_members()
    assert {"VIEW_STARTED", "EMERGENCY_DECLARED", "PERMISSION_DENIED", "AUTH_FAILURE"} <= used
    for name in used:
        assert name in AuditEvent.__members__, f"AuditEvent.{name} is not in the catalogue"
    # the record types are built from a kind and a change
    for kind in RecordKind:
        for change in ("received", "updated", "refused"):
            assert AuditEvent.of_record(kind, change) in AuditEvent
    with pytest.raises(ValueError):
        AuditEvent.of_record("nonsense", "received")


def _entry(event_type: str, details: dict | None = None, **fields) -> AuditEntry:
    base = {
        "seq": 1,
        "ts": "2026-11-23T14:00:00.000Z",
        "node": "n",
        "event_type": event_type,
        "actor_id": "officer",
        "actor_role": "officer",
        "actor_agency": "village-pd",
        "object": "camera:hs-front",
        "outcome": "success",
        "source": None,
        "reason": None,
        "details": details or {},
        "prev_hash": "0" * 64,
        "hash": "0" * 64,
    }
    return AuditEntry(**{**base, **fields})


@pytest.mark.parametrize("event", list(AuditEvent))
def test_every_catalogue_entry_reads_as_plain_words(event):
    assert event.text and event == event.value and isinstance(event, str)
    for details in (
        {},
        {
            "action": "LOCKDOWN",
            "agency": "village-pd",
            "cameras": ["a"],
            "seconds": 75,
            "format": "pdf",
            "month": "2026-11",
            "from_node": "a",
            "to_node": "b",
            "totp": "new",
            "expires": "2026-11-23T15:00:00+00:00",
            "event": "GrantStarted",
        },
    ):
        text = describe(_entry(event.value, details))
        assert text and not re.search(r"[{}\[\]|]", text), (event, text)
        assert "None" not in text


NAMES = Names(
    people={"officer": "Officer Dana Reyes"},
    cameras={"hs-front": "HS front entrance"},
    agencies={"village-pd": "Village Police Department"},
)


def test_the_words_use_names_and_leave_out_what_is_missing():
    assert (
        describe(_entry("view.started"), NAMES)
        == "Officer Dana Reyes (officer) started watching HS front entrance (hs-front)"
    )
    assert (
        describe(_entry("view.ended", {"viewer": "officer", "seconds": 125}, actor_id="system"), NAMES)
        == "Officer Dana Reyes (officer) stopped watching HS front entrance (hs-front) after 2 min 5 s"
    )
    assert (
        describe(_entry("emergency.declared", {"action": "LOCKDOWN"}, actor_id="system"))
        == "Sightline declared LOCKDOWN"
    )
    assert describe(_entry("emergency.declared"), NAMES) == "Officer Dana Reyes (officer) declared an emergency"
    assert (
        describe(
            _entry(
                "grant.started", {"agency": "village-pd", "cameras": ["a", "b"], "expires": "2026-11-23T15:00:00+00:00"}
            ),
            NAMES,
        )
        == "Access granted to Village Police Department for 2 cameras, until 2026-11-23 15:00 UTC"
    )
    assert (
        describe(_entry("grant.started", {"agency": "village-pd", "cameras": ["a"]}), NAMES)
        == "Access granted to Village Police Department for 1 camera"
    )
    assert (
        describe(_entry("account.enrolled", {"totp": "new"}, object="account:x"))
        == "officer set the sign-in password and a new authenticator of account:x"
    )
    assert (
        describe(_entry("account.enrolled", {"totp": "kept"}, object="account:x"))
        == "officer set the sign-in password of account:x"
    )
    assert (
        describe(_entry("relay.started", {}), NAMES)
        == "Gateway node ? began passing HS front entrance (hs-front) to node ?, for officers watching there"
    )
    # a type from a later release: who, and the type in words
    assert describe(_entry("door.propped_open"), NAMES) == "Officer Dana Reyes (officer): Door propped open"
