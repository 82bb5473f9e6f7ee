"""Sign-ins (what a person's tokens and sessions hang on), so they can be ended and revoked on every node.

``sign_ins``: one row per sign-in (emergency.sign_ins); tokens carry its id (``sid``) and
are refused once it has ended or expired. ``live_views.sign_in``: the sign-in that opened
a view session, so every node can close the video of a sign-in that ended, and the idle
lock knows a sign-in whose video plays is not idle. Working state: rows are updated.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_STATEMENTS = """
CREATE TABLE sign_ins (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    method TEXT NOT NULL,
    mfa {bool} NOT NULL,
    created {time} NOT NULL,
    expires {time} NOT NULL,
    ended_at {time},
    end_reason TEXT,
    ended_by TEXT
);
CREATE INDEX sign_ins_by_account ON sign_ins (account_id) WHERE ended_at IS NULL;
CREATE INDEX sign_ins_live ON sign_ins (expires) WHERE ended_at IS NULL;
ALTER TABLE live_views ADD COLUMN sign_in TEXT;
CREATE INDEX live_views_by_sign_in ON live_views (sign_in)
"""


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    sql = _STATEMENTS.format(time="TIMESTAMPTZ" if pg else "TEXT", bool="BOOLEAN" if pg else "INTEGER")
    for statement in sql.split(";"):
        op.execute(statement.strip())


def downgrade() -> None:
    op.execute("DROP INDEX live_views_by_sign_in")
    op.execute("ALTER TABLE live_views DROP COLUMN sign_in")
    op.execute("DROP TABLE sign_ins")
