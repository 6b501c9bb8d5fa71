"""Click-mined training pairs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_pairs",
        sa.Column("pair_id", sa.String(258), primary_key=True),
        sa.Column("impression_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128)),
        sa.Column("query", postgresql.JSONB, nullable=False),
        sa.Column("positive", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("hard_negatives", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("random_negatives", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("interaction", sa.String(32), nullable=False),
        sa.Column("ranker_model_version", sa.String(128), nullable=False),
        sa.Column("shown_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "mined_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_training_pairs_mined_at", "training_pairs", ["mined_at"])


def downgrade() -> None:
    op.drop_table("training_pairs")
