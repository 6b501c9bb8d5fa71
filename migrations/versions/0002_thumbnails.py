"""Product thumbnails for result grids.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "products",
        sa.Column("thumbnail", sa.LargeBinary, comment="WebP, at most 128 px a side"),
    )


def downgrade() -> None:
    op.drop_column("products", "thumbnail")
