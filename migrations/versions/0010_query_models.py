"""Query models: compact image encoders that search a gallery embedded by another model, and
the gallery model version each is compatible with (issue 14).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "query_models",
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column(
            "gallery_model_version",
            sa.String(128),
            nullable=False,
            comment="the collection model whose gallery it searches; any other is refused",
        ),
        sa.Column("image_size", sa.Integer, nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("artifact", sa.LargeBinary, nullable=False, comment="ONNX: image -> embedding"),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("card", JSONB, nullable=False, comment="input size and normalisation"),
        sa.Column("metrics", JSONB, nullable=False, comment="cost and recall, when measured"),
        sa.Column("lineage", JSONB, nullable=False, comment="training data and plan"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("query_models")
