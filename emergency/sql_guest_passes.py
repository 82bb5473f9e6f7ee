"""SqlStore's guest pass methods (the ``guest_passes`` table of revision 0005), for SQLite
and PostgreSQL alike through SqlStore's dialect hooks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from emergency.guest_passes import GuestPass, PassState

GUEST_PASS_COLUMNS = (
    "id",
    "emergency_id",
    "building",
    "link_hash",
    "pin_hash",
    "created_by",
    "created_at",
    "expires_at",
    "state",
    "wrong_pins",
    "redeemed_at",
    "guest_name",
    "guest_badge",
    "guest_agency",
    "ended_at",
    "end_reason",
)
_UNFINISHED = (PassState.OPEN.value, PassState.REDEEMED.value)


class _Hooks(Protocol):
    """SqlStore's dialect hooks these methods run on."""

    def _rows(self, sql: str, params: tuple[Any, ...] = ..., /) -> Sequence[Any]: ...
    def _write(self, sql: str, params: tuple[Any, ...], /) -> int: ...
    def _ts(self, t: datetime | None, /) -> Any: ...
    def _dt(self, value: Any, /) -> datetime | None: ...


class GuestPassSql:
    """Mixed into SqlStore, whose hooks (``_Hooks``) these methods use."""

    def insert_guest_pass(self: _Hooks, p: GuestPass) -> None:
        columns = ", ".join(GUEST_PASS_COLUMNS)
        marks = ", ".join("?" * len(GUEST_PASS_COLUMNS))
        self._write(f"INSERT INTO guest_passes ({columns}) VALUES ({marks})", _row(self, p))

    def update_guest_pass(self: _Hooks, p: GuestPass) -> None:
        sets = ", ".join(f"{c} = ?" for c in GUEST_PASS_COLUMNS[1:])
        row = _row(self, p)
        if self._write(f"UPDATE guest_passes SET {sets} WHERE id = ?", row[1:] + row[:1]) != 1:
            raise KeyError(p.id)

    def get_guest_pass(self: _Hooks, pass_id: str) -> GuestPass | None:
        rows = self._rows("SELECT * FROM guest_passes WHERE id = ?", (pass_id,))
        return _guest_pass(self, rows[0]) if rows else None

    def guest_pass_by_link(self: _Hooks, link_hash: str) -> GuestPass | None:
        rows = self._rows("SELECT * FROM guest_passes WHERE link_hash = ?", (link_hash,))
        return _guest_pass(self, rows[0]) if rows else None

    def guest_passes_of_emergency(self: _Hooks, emergency_id: str) -> list[GuestPass]:
        rows = self._rows("SELECT * FROM guest_passes WHERE emergency_id = ? ORDER BY created_at, id", (emergency_id,))
        return [_guest_pass(self, r) for r in rows]

    def unfinished_guest_passes(self: _Hooks) -> list[GuestPass]:
        rows = self._rows("SELECT * FROM guest_passes WHERE state IN (?, ?) ORDER BY created_at, id", _UNFINISHED)
        return [_guest_pass(self, r) for r in rows]


def _row(store: _Hooks, p: GuestPass) -> tuple[Any, ...]:
    ts = store._ts
    return (
        p.id,
        p.emergency_id,
        p.building,
        p.link_hash,
        p.pin_hash,
        p.created_by,
        ts(p.created_at),
        ts(p.expires_at),
        p.state.value,
        p.wrong_pins,
        ts(p.redeemed_at),
        p.guest_name,
        p.guest_badge,
        p.guest_agency,
        ts(p.ended_at),
        p.end_reason,
    )


def _guest_pass(store: _Hooks, r: Any) -> GuestPass:
    created, expires = store._dt(r["created_at"]), store._dt(r["expires_at"])
    assert created is not None and expires is not None
    return GuestPass(
        id=r["id"],
        emergency_id=r["emergency_id"],
        building=r["building"],
        link_hash=r["link_hash"],
        pin_hash=r["pin_hash"],
        created_by=r["created_by"],
        created_at=created,
        expires_at=expires,
        state=PassState(r["state"]),
        wrong_pins=int(r["wrong_pins"]),
        redeemed_at=store._dt(r["redeemed_at"]),
        guest_name=r["guest_name"],
        guest_badge=r["guest_badge"],
        guest_agency=r["guest_agency"],
        ended_at=store._dt(r["ended_at"]),
        end_reason=r["end_reason"],
    )
