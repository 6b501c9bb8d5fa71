"""StyleStream's contracts: events, dead letters, tables, the Milvus collection.

Imports nothing else from the project, so producers and consumers can depend on it alone.
"""
