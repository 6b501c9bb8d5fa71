"""Stores behind small interfaces (base.py): a vector index (Milvus) and a metadata repository
(Postgres), each with its in-memory twin (memory.py), the neutral filters every adapter
translates, the row shapes and codec, and the idempotent writer."""
