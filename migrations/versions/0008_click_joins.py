"""The click miner's join state in Postgres, beside the pairs it makes (was a Faust table).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "click_joins",
        sa.Column("impression_id", sa.String(128), primary_key=True),
        sa.Column("state", JSONB, nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_click_joins_updated_at", "click_joins", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_click_joins_updated_at", table_name="click_joins")
    op.drop_table("click_joins")
