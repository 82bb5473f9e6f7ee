"""Mutual-aid guest passes, bound to one emergency (emergency.guest_passes).

``guest_passes``: one row per pass. The link is kept only as its SHA-256
(``link_hash``, unique: how a redemption finds its pass) and the PIN only as an HMAC
keyed by the link, so neither can be read or searched from the database. Working state,
not a record: the audit log holds every step.
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = """
CREATE TABLE guest_passes (
    id TEXT PRIMARY KEY,
    emergency_id TEXT NOT NULL REFERENCES emergencies (id),
    building TEXT NOT NULL,
    link_hash TEXT NOT NULL UNIQUE,
    pin_hash TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at {time} NOT NULL,
    expires_at {time} NOT NULL,
    state TEXT NOT NULL,
    wrong_pins INTEGER NOT NULL DEFAULT 0,
    redeemed_at {time},
    guest_name TEXT,
    guest_badge TEXT,
    guest_agency TEXT,
    ended_at {time},
    end_reason TEXT
);
CREATE INDEX guest_passes_by_emergency ON guest_passes (emergency_id);
CREATE INDEX guest_passes_by_state ON guest_passes (state)
"""


def upgrade() -> None:
    time = "TIMESTAMPTZ" if op.get_bind().dialect.name == "postgresql" else "TEXT"
    for statement in _TABLES.format(time=time).split(";"):
        op.execute(statement.strip())


def downgrade() -> None:
    op.execute("DROP TABLE guest_passes")
