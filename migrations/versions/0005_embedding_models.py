"""Embedding heads and zero-downtime re-indexing: products keep their base embedding, a model
registry, and the serving pointer over Milvus collections.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "products",
        sa.Column(
            "base_embedding",
            sa.LargeBinary,
            comment="the base model's L2-normalised embedding, float16 little-endian: "
            "re-indexing with a new embedding head needs no image",
        ),
    )
    op.add_column(
        "training_pairs",
        sa.Column(
            "hard_negative_positions",
            postgresql.ARRAY(sa.Integer),
            nullable=False,
            server_default="{}",
        ),
    )
    op.create_table(
        "embedding_models",
        sa.Column("model_version", sa.String(128), primary_key=True),
        sa.Column("base_model_version", sa.String(128), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column(
            "artifact",
            sa.LargeBinary,
            nullable=False,
            comment="ONNX: base embedding -> served",
        ),
        sa.Column("artifact_sha256", sa.String(64), nullable=False),
        sa.Column("params", postgresql.JSONB, nullable=False, comment="training configuration"),
        sa.Column(
            "metrics",
            postgresql.JSONB,
            nullable=False,
            comment="held-out sessions, base vs trained",
        ),
        sa.Column(
            "lineage",
            postgresql.JSONB,
            nullable=False,
            comment="pairs used, base model, data window",
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "index_collections",
        sa.Column("collection", sa.String(255), primary_key=True),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False, comment="building, serving or retired"),
        sa.Column("rows", sa.BigInteger),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("switched_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_index_collections_one_serving",
        "index_collections",
        ["state"],
        unique=True,
        postgresql_where=sa.text("state = 'serving'"),
    )


def downgrade() -> None:
    op.drop_index("ix_index_collections_one_serving", table_name="index_collections")
    op.drop_table("index_collections")
    op.drop_table("embedding_models")
    op.drop_column("training_pairs", "hard_negative_positions")
    op.drop_column("products", "base_embedding")
