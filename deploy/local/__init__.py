"""Local Kafka, Postgres and Milvus Lite for the demo, the tests and CI, on 127.0.0.1 only,
with all data under the settings' ``data_dir``."""
