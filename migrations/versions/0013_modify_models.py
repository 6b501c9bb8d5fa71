"""Joint image + text modifier models (issue 16), registered with lineage like the other
models; the one in state 'serving' answers POST /v1/search/modify.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "modify_models",
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column(
            "base_model_version", sa.String(128), nullable=False, comment="its reference's space"
        ),
        sa.Column("dim", sa.Integer, nullable=False, comment="joined features' width"),
        sa.Column(
            "artifact", sa.LargeBinary, nullable=False, comment="ONNX: words + reference -> query"
        ),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, comment="serving or retired"),
        sa.Column("params", JSONB, nullable=False, comment="training configuration"),
        sa.Column("metrics", JSONB, nullable=False, comment="held-out queries, per method"),
        sa.Column("lineage", JSONB, nullable=False, comment="data it learned from"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index(
        "ix_modify_models_one_serving",
        "modify_models",
        ["state"],
        unique=True,
        postgresql_where=sa.text("state = 'serving'"),
    )


def downgrade() -> None:
    op.drop_index("ix_modify_models_one_serving", table_name="modify_models")
    op.drop_table("modify_models")
