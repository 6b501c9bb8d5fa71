"""Outfit compatibility models (issue 17), registered with lineage (label fraction, data, base
model) like the other models; the one in state 'serving' answers complete-the-look.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compat_models",
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("base_model_version", sa.String(128), nullable=False, comment="its items' space"),
        sa.Column("dim", sa.Integer, nullable=False, comment="joined features' width"),
        sa.Column(
            "artifact", sa.LargeBinary, nullable=False, comment="ONNX: features -> embedding"
        ),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, comment="serving or retired"),
        sa.Column("params", JSONB, nullable=False, comment="training configuration"),
        sa.Column("metrics", JSONB, nullable=False, comment="held-out FITB and AUC"),
        sa.Column("lineage", JSONB, nullable=False, comment="label fraction, data, base model"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index(
        "ix_compat_models_one_serving",
        "compat_models",
        ["state"],
        unique=True,
        postgresql_where=sa.text("state = 'serving'"),
    )


def downgrade() -> None:
    op.drop_index("ix_compat_models_one_serving", table_name="compat_models")
    op.drop_table("compat_models")
