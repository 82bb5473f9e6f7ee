"""People provisioned at sign-in (an agency's OpenID Connect subjects, emergency.people).

``people``: one row per ``"{owner}:{sub}"``, written at the first sign-in through the
provider and brought up to date (name, badge, role, buildings) at each later one. Not a
record: the audit log holds who signed in and what changed (``person.provisioned``,
``person.updated``); a row may be rewritten.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = """
CREATE TABLE people (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    subject TEXT NOT NULL,
    name TEXT NOT NULL,
    badge TEXT,
    role TEXT NOT NULL,
    agency TEXT,
    buildings TEXT NOT NULL,
    first_seen {time} NOT NULL,
    last_seen {time} NOT NULL,
    UNIQUE (owner, subject)
)
"""


def upgrade() -> None:
    time = "TIMESTAMPTZ" if op.get_bind().dialect.name == "postgresql" else "TEXT"
    for statement in _TABLES.format(time=time).split(";"):
        if statement.strip():
            op.execute(statement.strip())


def downgrade() -> None:
    op.execute("DROP TABLE people")
