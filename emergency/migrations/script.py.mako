"""${message}

Revision ${up_revision} (after ${down_revision | comma,n}), ${create_date}.
"""

from __future__ import annotations

from alembic import op

revision = ${repr(up_revision)}
down_revision: str | None = ${repr(down_revision)}
branch_labels: str | None = ${repr(branch_labels)}
depends_on: str | None = ${repr(depends_on)}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    ${upgrades if upgrades else "raise NotImplementedError(dialect)"}


def downgrade() -> None:
    raise NotImplementedError("restore the copy kept before the upgrade")
