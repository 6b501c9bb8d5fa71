"""Postgres tables (SQLAlchemy Core). Alembic migrations create them; tests check the two agree."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    REAL,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("product_id", String(128), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("title", Text, nullable=False),
    Column("brand", Text),
    Column("category", String(64), nullable=False, index=True),
    Column("price", Numeric(12, 2), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("image_ref", Text, nullable=False),
    Column("synthetic_fields", ARRAY(Text), nullable=False, server_default="{}"),
    Column("roi_box", ARRAY(Integer), nullable=False, comment="x0,y0,x1,y1 in image pixels"),
    Column("image_width", Integer, nullable=False),
    Column("image_height", Integer, nullable=False),
    Column("primary_colour", String(32), nullable=False, index=True),
    Column("colour_fractions", JSONB, nullable=False, comment="palette name -> share of ROI"),
    Column("colour_vector", ARRAY(REAL), nullable=False),
    Column("model_version", String(128), nullable=False),
    Column("thumbnail", LargeBinary, comment="WebP, at most 128 px a side"),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("produced_at", DateTime(timezone=True)),
    Column("indexed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# One row per product ever seen, deleted or not: the idempotency ledger. A redelivered or stale
# event (version <= ledger version) changes nothing; a delete leaves a tombstone here.
product_ledger = Table(
    "product_ledger",
    metadata,
    Column("product_id", String(128), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default="false"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
