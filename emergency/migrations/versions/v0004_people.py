"""People provisioned at sign-in (an agency's OpenID Connect subjects).

Reserved revision: its tables are added by the change that builds the feature.
"""

from __future__ import annotations

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
