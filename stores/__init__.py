"""Stores behind small interfaces: a vector index (Milvus) and a metadata repository (Postgres)."""
