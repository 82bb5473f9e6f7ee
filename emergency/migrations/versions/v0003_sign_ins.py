"""Sign-ins (what a person's tokens and sessions hang on), so they can be ended and revoked on every node.

Reserved revision: its tables are added by the change that builds the feature.
"""

from __future__ import annotations

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
