"""Outfits and their items (issue 17): products worn together, one per role, labelled
compatible or incompatible, with a source and a confidence; deleted outfits stay as tombstones.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outfits",
        sa.Column("outfit_id", sa.String(128), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("label", sa.String(16), comment="compatible or incompatible (null once deleted)"),
        sa.Column("label_confidence", sa.REAL),
        sa.Column("source", sa.String(16), comment="editorial, simulated or user"),
        sa.Column("title", sa.Text),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("produced_at", sa.DateTime(timezone=True)),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "outfit_items",
        sa.Column(
            "outfit_id",
            sa.String(128),
            sa.ForeignKey("outfits.outfit_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "role", sa.String(16), primary_key=True, comment="top, bottom, dress, outer, shoes..."
        ),
        sa.Column("product_id", sa.String(128), nullable=False),
    )
    op.create_index("ix_outfit_items_product_id", "outfit_items", ["product_id"])


def downgrade() -> None:
    op.drop_index("ix_outfit_items_product_id", table_name="outfit_items")
    op.drop_table("outfit_items")
    op.drop_table("outfits")
