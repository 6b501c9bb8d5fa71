"""Product text for text queries: the words each product is found by, and their full-text
index (GIN), filled in for products indexed before this revision.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import re
import unicodedata

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# schemas/tables.py SEARCH_VECTOR as of this revision
SEARCH_VECTOR = "to_tsvector('english'::regconfig, coalesce(search_text, ''::text))"
# What processors/text.product_text writes for new products (as of this revision), for the
# products stored before it: their words, folded to lower-case ASCII, a thousand at a time.
SOURCE = """
SELECT p.product_id, concat_ws(
    ' ', p.title, p.brand, p.category, p.primary_colour,
    (SELECT string_agg(t.name, ' ' ORDER BY t.position)
       FROM product_attributes a JOIN attribute_taxonomy t ON t.key = a.attribute_key
      WHERE a.product_id = p.product_id)) AS words
FROM products p
WHERE p.search_text IS NULL AND p.product_id > :after
ORDER BY p.product_id
LIMIT 1000
"""


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return " ".join(re.findall(r"[a-z0-9]+", folded))[:4096]


def _backfill() -> None:
    conn = op.get_bind()
    after = ""
    while True:
        rows = conn.execute(sa.text(SOURCE), {"after": after}).all()
        if not rows:
            return
        conn.execute(
            sa.text("UPDATE products SET search_text = :words WHERE product_id = :pid"),
            [{"pid": r.product_id, "words": _fold(r.words)} for r in rows],
        )
        after = rows[-1].product_id


def upgrade() -> None:
    op.add_column(
        "products",
        sa.Column(
            "search_text",
            sa.Text,
            comment="the words text queries match: title, brand, category, colour, attribute names",
        ),
    )
    _backfill()
    op.add_column(
        "products",
        sa.Column("search_vector", TSVECTOR, sa.Computed(SEARCH_VECTOR, persisted=True)),
    )
    op.create_index(
        "ix_products_search_vector", "products", ["search_vector"], postgresql_using="gin"
    )


def downgrade() -> None:
    op.drop_index("ix_products_search_vector", table_name="products")
    op.drop_column("products", "search_vector")
    op.drop_column("products", "search_text")
