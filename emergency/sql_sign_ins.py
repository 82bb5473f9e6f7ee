"""Sign-ins in SQL (emergency.sign_ins, revision 0003): SqlStore's mixin for SignInRepo,
written once for SQLite and PostgreSQL against SqlStore's dialect hooks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from emergency.sign_ins import SignInRecord

SIGN_IN_COLUMNS = ("id", "account_id", "method", "mfa", "created", "expires", "ended_at", "end_reason", "ended_by")


class _Sql(Protocol):
    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> Sequence[Any]: ...
    def _write(self, sql: str, params: tuple[Any, ...]) -> int: ...
    @staticmethod
    def _ts(t: datetime | None, /) -> Any: ...
    @staticmethod
    def _dt(value: Any, /) -> datetime | None: ...
    def _at(self, value: Any) -> datetime: ...
    def _sign_in(self, r: Any) -> SignInRecord: ...


def _marks(n: int) -> str:
    return ", ".join("?" * n)


class SqlSignIns:
    def insert_sign_in(self: _Sql, record: SignInRecord) -> None:
        ts = self._ts
        self._write(
            f"INSERT INTO sign_ins ({', '.join(SIGN_IN_COLUMNS)}) VALUES ({_marks(len(SIGN_IN_COLUMNS))})",
            (
                record.id,
                record.account_id,
                record.method,
                bool(record.mfa),
                ts(record.created),
                ts(record.expires),
                ts(record.ended_at),
                record.end_reason,
                record.ended_by,
            ),
        )

    def update_sign_in(self: _Sql, record: SignInRecord) -> None:
        ts = self._ts
        self._write(
            "UPDATE sign_ins SET expires = ?, ended_at = ?, end_reason = ?, ended_by = ? WHERE id = ?",
            (ts(record.expires), ts(record.ended_at), record.end_reason, record.ended_by, record.id),
        )

    def get_sign_in(self: _Sql, sign_in_id: str) -> SignInRecord | None:
        rows = self._rows("SELECT * FROM sign_ins WHERE id = ?", (sign_in_id,))
        return self._sign_in(rows[0]) if rows else None

    def sign_ins_by_id(self: _Sql, ids: list[str]) -> list[SignInRecord]:
        if not ids:
            return []
        rows = self._rows(f"SELECT * FROM sign_ins WHERE id IN ({_marks(len(ids))})", tuple(ids))
        return [self._sign_in(r) for r in rows]

    def sign_ins_of(self: _Sql, account_id: str, *, unended_only: bool = False) -> list[SignInRecord]:
        where = " AND ended_at IS NULL" if unended_only else ""
        rows = self._rows(f"SELECT * FROM sign_ins WHERE account_id = ?{where} ORDER BY created, id", (account_id,))
        return [self._sign_in(r) for r in rows]

    def live_sign_ins(self: _Sql, now: datetime, account_id: str | None = None) -> list[SignInRecord]:
        where, params = "ended_at IS NULL AND expires > ?", [self._ts(now)]
        if account_id is not None:
            where += " AND account_id = ?"
            params.append(account_id)
        rows = self._rows(f"SELECT * FROM sign_ins WHERE {where} ORDER BY created, id", tuple(params))
        return [self._sign_in(r) for r in rows]

    def sign_ins_watching(self: _Sql, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = self._rows(f"SELECT DISTINCT sign_in FROM live_views WHERE sign_in IN ({_marks(len(ids))})", tuple(ids))
        return {r["sign_in"] for r in rows}

    def _sign_in(self: _Sql, r: Any) -> SignInRecord:
        return SignInRecord(
            id=r["id"],
            account_id=r["account_id"],
            method=r["method"],
            mfa=bool(r["mfa"]),
            created=self._at(r["created"]),
            expires=self._at(r["expires"]),
            ended_at=self._dt(r["ended_at"]),
            end_reason=r["end_reason"],
            ended_by=r["ended_by"],
        )
