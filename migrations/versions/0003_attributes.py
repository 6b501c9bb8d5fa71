"""Fashion attributes: the taxonomy (seeded from TAXONOMY_V1), product attributes, and the
fused category on products.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from schemas.attributes import TAXONOMY_V1, taxonomy_rows

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    taxonomy = op.create_table(
        "attribute_taxonomy",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("group_key", sa.String(32), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False, comment="model, derived or catalogue"),
        sa.Column("parent", sa.String(64)),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("taxonomy_version", sa.Integer, nullable=False),
    )
    op.create_index("ix_attribute_taxonomy_group_key", "attribute_taxonomy", ["group_key"])
    op.bulk_insert(taxonomy, taxonomy_rows(TAXONOMY_V1, 1))
    op.create_table(
        "product_attributes",
        sa.Column("product_id", sa.String(128), primary_key=True),
        sa.Column("attribute_key", sa.String(64), primary_key=True),
        sa.Column("confidence", sa.REAL, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(128)),
    )
    op.create_index("ix_product_attributes_attribute_key", "product_attributes", ["attribute_key"])
    op.add_column(
        "products",
        sa.Column("predicted_category", sa.String(64), comment="model + search fusion"),
    )
    op.add_column("products", sa.Column("category_confidence", sa.REAL))
    op.add_column("products", sa.Column("tagger_version", sa.String(128)))
    op.create_index("ix_products_predicted_category", "products", ["predicted_category"])


def downgrade() -> None:
    op.drop_index("ix_products_predicted_category", "products")
    for column in ("tagger_version", "category_confidence", "predicted_category"):
        op.drop_column("products", column)
    op.drop_table("product_attributes")
    op.drop_table("attribute_taxonomy")
