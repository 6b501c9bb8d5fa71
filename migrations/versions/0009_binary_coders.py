"""Binary coders and the coder of each collection's Hamming index (issue 14).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "binary_coders",
        sa.Column("coder_version", sa.String(128), primary_key=True),
        sa.Column(
            "model_version", sa.String(128), nullable=False, comment="the space it was fitted in"
        ),
        sa.Column("kind", sa.String(16), nullable=False, comment="sign or pca-itq"),
        sa.Column("bits", sa.Integer, nullable=False),
        sa.Column("artifact", sa.LargeBinary, nullable=False, comment="npz: centre and projection"),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("params", JSONB, nullable=False, comment="fitting: sample size, iterations"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.add_column(
        "index_collections",
        sa.Column(
            "coder_version",
            sa.String(128),
            comment="the binary coder of its Hamming index (binary_coders); null: float only",
        ),
    )


def downgrade() -> None:
    op.drop_column("index_collections", "coder_version")
    op.drop_table("binary_coders")
