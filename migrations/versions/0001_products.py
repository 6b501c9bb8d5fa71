"""Products and the idempotency ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("product_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("brand", sa.Text),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("price", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("image_ref", sa.Text, nullable=False),
        sa.Column(
            "synthetic_fields", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"
        ),
        sa.Column(
            "roi_box",
            postgresql.ARRAY(sa.Integer),
            nullable=False,
            comment="x0,y0,x1,y1 in image pixels",
        ),
        sa.Column("image_width", sa.Integer, nullable=False),
        sa.Column("image_height", sa.Integer, nullable=False),
        sa.Column("primary_colour", sa.String(32), nullable=False),
        sa.Column(
            "colour_fractions",
            postgresql.JSONB,
            nullable=False,
            comment="palette name -> share of ROI",
        ),
        sa.Column("colour_vector", postgresql.ARRAY(sa.REAL), nullable=False),
        sa.Column("model_version", sa.String(128), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("produced_at", sa.DateTime(timezone=True)),
        sa.Column(
            "indexed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_products_category", "products", ["category"])
    op.create_index("ix_products_primary_colour", "products", ["primary_colour"])
    op.create_table(
        "product_ledger",
        sa.Column("product_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("product_ledger")
    op.drop_index("ix_products_primary_colour", table_name="products")
    op.drop_index("ix_products_category", table_name="products")
    op.drop_table("products")
