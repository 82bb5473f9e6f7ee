"""Live view sessions and node heartbeats, so a node that crashed closes the sessions it
left open at its next start (emergency.live_views).

``live_views``: one row per view session a node is serving, written with its
``view.started`` entry and removed with its ``view.ended`` entry. ``node_heartbeats``:
each node's last sign of life while it serves video. Both are working state, not records:
rows are deleted, and nothing here is append-only.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = """
CREATE TABLE live_views (
    session_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    viewer TEXT NOT NULL,
    viewer_role TEXT NOT NULL,
    viewer_agency TEXT,
    camera_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    grant_id TEXT NOT NULL,
    source TEXT,
    started {time} NOT NULL
);
CREATE INDEX live_views_by_node ON live_views (node);
CREATE TABLE node_heartbeats (
    node TEXT PRIMARY KEY,
    beat_at {time} NOT NULL
)
"""


def upgrade() -> None:
    time = "TIMESTAMPTZ" if op.get_bind().dialect.name == "postgresql" else "TEXT"
    for statement in _TABLES.format(time=time).split(";"):
        op.execute(statement.strip())


def downgrade() -> None:
    op.execute("DROP TABLE node_heartbeats")
    op.execute("DROP TABLE live_views")
