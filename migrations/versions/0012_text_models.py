"""Text models and the Milvus collections of product text vectors, with their serving pointer
(issue 16): registered with lineage like the image heads, switched like image collections.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _created_at() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )


def upgrade() -> None:
    op.create_table(
        "text_models",
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False, comment="gru or minilm (the query tower)"),
        sa.Column(
            "base_model_version", sa.String(128), nullable=False, comment="its dense input's space"
        ),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column(
            "query_artifact", sa.LargeBinary, nullable=False, comment="ONNX: words -> vector"
        ),
        sa.Column(
            "product_artifact", sa.LargeBinary, nullable=False, comment="ONNX: product -> vector"
        ),
        sa.Column(
            "artifact_sha256", sa.String(64), nullable=False, comment="of both graphs, in order"
        ),
        sa.Column("params", JSONB, nullable=False, comment="training configuration"),
        sa.Column("metrics", JSONB, nullable=False, comment="held-out sessions, served vs model"),
        sa.Column("lineage", JSONB, nullable=False, comment="pairs used, sessions, data window"),
        _created_at(),
    )
    op.create_table(
        "text_collections",
        sa.Column("collection", sa.String(255), primary_key=True),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, comment="building, serving or retired"),
        sa.Column("rows", sa.BigInteger),
        _created_at(),
        sa.Column("switched_at", sa.DateTime(timezone=True)),
        sa.Column(
            "coder_version", sa.String(128), comment="always null: text collections are float"
        ),
    )
    op.create_index(
        "ix_text_collections_one_serving",
        "text_collections",
        ["state"],
        unique=True,
        postgresql_where=sa.text("state = 'serving'"),
    )


def downgrade() -> None:
    op.drop_index("ix_text_collections_one_serving", table_name="text_collections")
    op.drop_table("text_collections")
    op.drop_table("text_models")
