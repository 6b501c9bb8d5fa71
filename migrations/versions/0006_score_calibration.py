"""A registered head's score calibration: its cosines mapped onto the base model's scale, so
the served rank weights mean the same whichever model serves.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "embedding_models",
        sa.Column(
            "score_calibration",
            postgresql.JSONB,
            comment="served visual score = shift + scale * cosine (null: the cosine itself)",
        ),
    )


def downgrade() -> None:
    op.drop_column("embedding_models", "score_calibration")
