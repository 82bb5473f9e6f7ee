"""Mutual-aid guest passes, bound to one emergency.

Reserved revision: its tables are added by the change that builds the feature.
"""

from __future__ import annotations

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
