"""Postgres tables (SQLAlchemy Core). Alembic migrations create them; tests check the two agree."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    REAL,
    BigInteger,
    Boolean,
    Column,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

metadata = MetaData()

# Postgres full-text analysis of a product's words: English stop words out, Snowball stems.
SEARCH_VECTOR = "to_tsvector('english'::regconfig, coalesce(search_text, ''::text))"

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
    Column(
        "base_embedding",
        LargeBinary,
        comment="the base model's L2-normalised embedding, float16 little-endian: re-indexing "
        "with a new embedding head needs no image",
    ),
    Column("predicted_category", String(64), index=True, comment="model + search fusion"),
    Column("category_confidence", REAL),
    Column("tagger_version", String(128)),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("produced_at", DateTime(timezone=True)),
    Column("indexed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column(
        "search_text",
        Text,
        comment="the words text queries match: title, brand, category, colour, attribute names",
    ),
    Column("search_vector", TSVECTOR, Computed(SEARCH_VECTOR, persisted=True)),
)
# Text queries (stores/postgres.py text_search) match this inverted index.
Index("ix_products_search_vector", products.c.search_vector, postgresql_using="gin")

# The attribute vocabulary (schemas/attributes.py), seeded by migrations, one row per key.
attribute_taxonomy = Table(
    "attribute_taxonomy",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("group_key", String(32), nullable=False, index=True),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("source", String(16), nullable=False, comment="model, derived or catalogue"),
    Column("parent", String(64)),
    Column("position", Integer, nullable=False),
    Column("taxonomy_version", Integer, nullable=False),
)

# Each product's attributes: the inverted index (attribute -> products) is the key index.
product_attributes = Table(
    "product_attributes",
    metadata,
    Column("product_id", String(128), primary_key=True),
    Column("attribute_key", String(64), primary_key=True, index=True),
    Column("confidence", REAL, nullable=False),
    Column("source", String(16), nullable=False),
    Column("model_version", String(128)),
)

# Click-mined training pairs (schemas/interactions.py TrainingPair), one row per pair id.
training_pairs = Table(
    "training_pairs",
    metadata,
    Column("pair_id", String(258), primary_key=True),
    Column("impression_id", String(128), nullable=False),
    Column("session_id", String(128), nullable=False),
    Column("user_id", String(128)),
    Column("query", JSONB, nullable=False),
    Column("positive", String(128), nullable=False),
    Column("position", Integer, nullable=False),
    Column("hard_negatives", ARRAY(Text), nullable=False),
    Column("hard_negative_positions", ARRAY(Integer), nullable=False, server_default="{}"),
    Column("random_negatives", ARRAY(Text), nullable=False),
    Column("interaction", String(32), nullable=False),
    Column("ranker_model_version", String(128), nullable=False),
    Column("shown_at", DateTime(timezone=True), nullable=False),
    Column("clicked_at", DateTime(timezone=True), nullable=False),
    Column(
        "mined_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True
    ),
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

# The embedding model registry: each head trained on mined pairs, with its artifact (the ONNX
# bytes, so every worker and API replica can load it from here), metrics and lineage.
embedding_models = Table(
    "embedding_models",
    metadata,
    Column("model_version", String(128), primary_key=True),
    Column("base_model_version", String(128), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("artifact", LargeBinary, nullable=False, comment="ONNX: base embedding -> served"),
    Column("artifact_sha256", String(64), nullable=False),
    Column("params", JSONB, nullable=False, comment="training configuration"),
    Column("metrics", JSONB, nullable=False, comment="held-out sessions, base vs trained"),
    Column("lineage", JSONB, nullable=False, comment="pairs used, base model, data window"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column(
        "score_calibration",
        JSONB,
        comment="served visual score = shift + scale * cosine (null: the cosine itself)",
    ),
)

# Milvus collections known to the system and which one serves. Searches and the product agent
# read this pointer; `stylestream reindex` builds a collection then switches it in one
# transaction. At most one row is serving (a partial unique index); the worker also writes to
# a collection being built, so events during a re-index are not lost.
index_collections = Table(
    "index_collections",
    metadata,
    Column("collection", String(255), primary_key=True),
    Column("model_version", String(128), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("state", String(16), nullable=False, comment="building, serving or retired"),
    Column("rows", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("switched_at", DateTime(timezone=True)),
    Column(
        "coder_version",
        String(128),
        comment="the binary coder of its Hamming index (binary_coders); null: float only",
    ),
)

Index(
    "ix_index_collections_one_serving",
    index_collections.c.state,
    unique=True,
    postgresql_where=index_collections.c.state == "serving",
)

# Binary coders (processors/binary_codes.py), fitted on a collection's vectors when a re-index
# builds it; a collection's Hamming index holds the codes of its coder only.
binary_coders = Table(
    "binary_coders",
    metadata,
    Column("coder_version", String(128), primary_key=True),
    Column("model_version", String(128), nullable=False, comment="the space it was fitted in"),
    Column("kind", String(16), nullable=False, comment="sign or pca-itq"),
    Column("bits", Integer, nullable=False),
    Column("artifact", LargeBinary, nullable=False, comment="npz: centre and projection"),
    Column("artifact_sha256", String(64), nullable=False),
    Column("params", JSONB, nullable=False, comment="fitting: sample size, iterations"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Compact query models (issue 14): an image encoder whose embeddings land in another model's
# space, so it searches a gallery that model embedded; the API serves one only against a
# collection of that model and refuses any other pairing (mismatched spaces rank at chance).
query_models = Table(
    "query_models",
    metadata,
    Column("model_version", String(128), primary_key=True),
    Column(
        "gallery_model_version",
        String(128),
        nullable=False,
        comment="the collection model whose gallery it searches; any other is refused",
    ),
    Column("image_size", Integer, nullable=False),
    Column("dim", Integer, nullable=False),
    Column("artifact", LargeBinary, nullable=False, comment="ONNX: image -> embedding"),
    Column("artifact_sha256", String(64), nullable=False),
    Column("card", JSONB, nullable=False, comment="input size and normalisation"),
    Column("metrics", JSONB, nullable=False, comment="cost and recall, when measured"),
    Column("lineage", JSONB, nullable=False, comment="training data and plan"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Text models (issue 16): a query tower (words -> vector) and a product tower (a product's words
# and dense features -> vector) trained together on click-mined text pairs; the product tower
# reads the base image embedding of ``base_model_version``, so a change of base model needs a
# new text model.
text_models = Table(
    "text_models",
    metadata,
    Column("model_version", String(128), primary_key=True),
    Column("kind", String(16), nullable=False, comment="gru or minilm (the query tower)"),
    Column("base_model_version", String(128), nullable=False, comment="its dense input's space"),
    Column("dim", Integer, nullable=False),
    Column("query_artifact", LargeBinary, nullable=False, comment="ONNX: words -> vector"),
    Column("product_artifact", LargeBinary, nullable=False, comment="ONNX: product -> vector"),
    Column("artifact_sha256", String(64), nullable=False, comment="of both graphs, in order"),
    Column("params", JSONB, nullable=False, comment="training configuration"),
    Column("metrics", JSONB, nullable=False, comment="held-out sessions, served vs model"),
    Column("lineage", JSONB, nullable=False, comment="pairs used, sessions, data window"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Milvus collections of product text vectors and which one serves text queries, as
# index_collections is for images (same columns, same switch): none serves until the first
# `stylestream reindex --text`; until then text queries are answered by words alone.
text_collections = Table(
    "text_collections",
    metadata,
    Column("collection", String(255), primary_key=True),
    Column("model_version", String(128), nullable=False),
    Column("dim", Integer, nullable=False),
    Column("state", String(16), nullable=False, comment="building, serving or retired"),
    Column("rows", BigInteger),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("switched_at", DateTime(timezone=True)),
    Column("coder_version", String(128), comment="always null: text collections are float"),
)

Index(
    "ix_text_collections_one_serving",
    text_collections.c.state,
    unique=True,
    postgresql_where=text_collections.c.state == "serving",
)

# Originals of dead letters too large to travel inside the letter (the letter carries their
# SHA-256): `stylestream dlq replay` reads them back. Content-addressed, so writes repeat freely.
dead_letter_originals = Table(
    "dead_letter_originals",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("original", LargeBinary, nullable=False),
    Column("stored_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


def _side_model_table(name: str, space: str, artifact: str, metrics: str, lineage: str) -> Table:
    """A registry of models serving beside the image model (stores/side_models.py): one
    shape, the comments its own; one serves at a time."""
    table = Table(
        name,
        metadata,
        Column("model_version", String(128), primary_key=True),
        Column("base_model_version", String(128), nullable=False, comment=space),
        Column("dim", Integer, nullable=False, comment="joined features' width"),
        Column("artifact", LargeBinary, nullable=False, comment=artifact),
        Column("artifact_sha256", String(64), nullable=False),
        Column("state", String(16), nullable=False, comment="serving or retired"),
        Column("params", JSONB, nullable=False, comment="training configuration"),
        Column("metrics", JSONB, nullable=False, comment=metrics),
        Column("lineage", JSONB, nullable=False, comment=lineage),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    Index(
        f"ix_{name}_one_serving",
        table.c.state,
        unique=True,
        postgresql_where=table.c.state == "serving",
    )
    return table


# Joint image + text modifier models (issue 16): modifier words and a reference's joined
# features (processors/modify.py) in, a query in the same space out; the reference and the
# candidates are read in ``base_model_version``'s space.
modify_models = _side_model_table(
    "modify_models",
    space="its reference's space",
    artifact="ONNX: words + reference -> query",
    metrics="held-out queries, per method",
    lineage="data it learned from",
)

# Outfit compatibility models (issue 17): an item's joined features in, its embedding out (the
# pair head that scores role pairs rides in the graph's metadata); items are read in
# ``base_model_version``'s space.
compat_models = _side_model_table(
    "compat_models",
    space="its items' space",
    artifact="ONNX: features -> embedding",
    metrics="held-out FITB and AUC",
    lineage="label fraction, data, base model",
)

# The click miner's join state, one row per impression id (processors/clicks.py's state dict),
# written in the transaction that stores the pairs it made: both or neither survive a crash.
# Rows expire by ``updated_at`` (when the miner last touched them, not the events' own time: a
# miner catching up on a backlog must not expire states it is about to need).
click_joins = Table(
    "click_joins",
    metadata,
    Column("impression_id", String(128), primary_key=True),
    Column("state", JSONB, nullable=False),
    Column(
        "updated_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True
    ),
)

# Outfits (issue 17): products worn together, one per role, labelled compatible or not, from a
# source (editorial, simulated: the SIMULATED stylist's, or user) at a confidence. A deleted
# outfit keeps its row (``deleted``, its version) as a tombstone, so a stale upsert replayed
# after the delete cannot bring it back; its items go.
outfits = Table(
    "outfits",
    metadata,
    Column("outfit_id", String(128), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False, server_default="false"),
    Column("label", String(16), comment="compatible or incompatible (null once deleted)"),
    Column("label_confidence", REAL),
    Column("source", String(16), comment="editorial, simulated or user"),
    Column("title", Text),
    Column("event_time", DateTime(timezone=True), nullable=False),
    Column("produced_at", DateTime(timezone=True)),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

outfit_items = Table(
    "outfit_items",
    metadata,
    Column(
        "outfit_id",
        String(128),
        ForeignKey("outfits.outfit_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("role", String(16), primary_key=True, comment="top, bottom, dress, outer, shoes..."),
    Column("product_id", String(128), nullable=False, index=True),
)
