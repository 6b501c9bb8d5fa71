"""The one settings object. Built at the entry point, passed down; never read from a global."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from schemas import topics


def models_name(name: str, what: str) -> Path:
    """A relative .onnx path with no way out of the models folder (no ``..``); links are
    checked where the folder is known (config/assembly.py models_file)."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts or path.suffix != ".onnx":
        raise ValueError(f"{what} {name!r}: give an .onnx file's path inside the models folder")
    return path


def _sslmode(dsn: str) -> str | None:
    """The DSN's effective libpq sslmode (the last one given)."""
    modes = parse_qs(urlsplit(dsn).query).get("sslmode")
    return modes[-1] if modes else None


# Passwords seen in examples and manifests: a production DSN never uses them.
DEFAULT_PASSWORDS = ("stylestream", "postgres", "password", "change-me", "changeme", "admin")


class Settings(BaseSettings):
    """Every knob, overridable as ``STYLESTREAM_<NAME>`` (e.g. ``STYLESTREAM_KAFKA_BOOTSTRAP``)."""

    model_config = SettingsConfigDict(env_prefix="STYLESTREAM_", extra="ignore")

    # Local data: every dev service, model file and catalogue lives under this folder.
    data_dir: Path = Path(".stylestream")

    # development: the embedded local services; production: refuses to start while a setting
    # is unsafe (production_problems).
    env: Literal["development", "production"] = "development"

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None  # the CA that signed the brokers' certificates
    kafka_controller_port: int = 19093
    topic_prefix: str = "stylestream."
    topic_partitions: int = 4
    topic_replication: int = 1
    app_id: str = "stylestream-worker"
    kafka_session_timeout_s: float = 10.0
    kafka_heartbeat_interval_s: float = 2.0

    # Postgres: the DSN wins when set; else the local embedded server on pg_port.
    postgres_dsn: SecretStr | None = None  # holds the password: from a secret
    pg_sslmode: str | None = None  # libpq sslmode added to the DSN (require, verify-full...)
    pg_sslrootcert: Path | None = None  # the CA that verify-* checks the server against
    pg_port: int = 15432
    pg_database: str = "stylestream"

    # Milvus: a local Milvus Lite path (in-process) or any http(s)://host:port server URI.
    milvus_uri: str = "http://127.0.0.1:19540"
    milvus_token: SecretStr = SecretStr("")
    milvus_collection: str = "products_v1"
    milvus_index: str = "HNSW"  # HNSW | FLAT | IVF_FLAT
    milvus_lite_port: int = 19540
    # `dev up` starts the Milvus standalone server instead of Lite when the URI names this port
    milvus_server_port: int = 19530
    # Re-indexing: the serving pointer (Postgres) is re-read this often by workers and the API;
    # the alias follows the serving collection for other Milvus clients.
    serving_refresh_s: float = 2.0
    milvus_alias: str = "products_serving"
    milvus_search_consistency: str = "Strong"  # Bounded on servers when ~200 ms matters
    milvus_flush_rows: int = 5000  # flush the index after this many written rows ...
    milvus_flush_interval_s: float = 10.0  # ... or this long after the last write
    # The binary index (issue 14): a collection re-indexed with a coder (`stylestream reindex
    # --codes`) keeps a Hamming index beside it, always written; searches use it when
    # serving_mode is "binary": Hamming top k x oversampling, then an exact float rerank.
    # Needs a Milvus with binary vectors (a server, not Lite 3).
    serving_mode: Literal["float", "binary"] = "float"
    binary_oversampling: int = 8
    binary_index: Literal["BIN_IVF_FLAT", "BIN_FLAT"] = "BIN_IVF_FLAT"
    binary_nlist: int = 1024
    binary_nprobe: int = 32
    # a ceiling on one search's Hamming candidates, whatever a request's oversampling asks
    binary_max_candidates: int = 4096
    # the rerank's candidate vectors kept per process by (id, version), float16 (~3.5 KB a
    # 1280-d product): 512 MB holds ~150k products; a 1M catalogue needs ~3.5 GB. 0: off
    # (every search reads its candidates from Milvus by id)
    binary_rerank_cache_mb: int = Field(default=512, ge=0)
    # a registered compact query model (`stylestream train compact`) that embeds API image
    # queries instead of the base model; refused (409) unless the serving collection holds its
    # gallery model's vectors. Empty: the base model embeds queries.
    query_model: str = ""

    # Model
    model_dir: Path | None = None  # default: <data_dir>/models
    image_size: int = 160  # of the pretrained base model (Lite0 at this size)
    # Another base model: an ONNX embedding model with its card, a path inside the models
    # folder (e.g. the gallery model `stylestream train compact` trains, whose compact query
    # model STYLESTREAM_QUERY_MODEL then serves). Workers embed products with it; the
    # products already stored keep their old embeddings until their events are replayed.
    base_model: str = ""
    embed_batch_size: int = 64
    onnx_threads: int = 0  # 0 = onnxruntime's default

    # Search (two-stage: Milvus top-N, then rerank; see processors/ranking.py)
    # 50: demo recall@10 0.832 vs 0.834 at 100, and Milvus Lite's search cost grows with the
    # hits returned (a batch of 8 queries: 13.1 vs 20.6 ms a query; NOTES.md)
    rerank_candidates: int = 50
    rank_weight_visual: float = 0.8
    rank_weight_colour: float = 0.1
    rank_weight_attributes: float = 0.1

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_body_bytes: int = 16 * 1024 * 1024  # a 10 MiB image as base64 JSON fits
    api_rate_per_s: float = 50.0  # per client address; 0 = no limit
    api_rate_burst: int = 100
    # Proxies (addresses or CIDRs) whose X-Forwarded-For names the client for the rate limit;
    # empty: the peer address is the client (a proxy in front then shares one bucket).
    api_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Query images decoded at once by one API process (each may take PIL up to
    # max_image_decode_bytes x ~1.35), and how long a request waits for a turn before a 503.
    api_max_concurrent_decodes: int = 4
    api_decode_wait_s: float = 10.0
    # Modifier searches run the joint model (and, for an image, the image path) outside the
    # image batcher: at most this many at once, the rest wait api_decode_wait_s, then 503
    api_max_concurrent_modifiers: int = Field(default=2, ge=1, le=64)
    api_max_concurrent_looks: int = Field(default=4, ge=1, le=64)  # complete-the-look at once
    # Image searches in flight are batched (search/batching.py): one model call for every
    # query waiting, at most api_batch_max; api_batch_wait_ms > 0 holds a lone query that
    # long for company (0: never). Queries waiting beyond api_search_queue, or unanswered
    # after api_search_timeout_s, get a 503.
    api_batch_max: int = Field(default=16, ge=1, le=256)
    api_batch_wait_ms: float = Field(default=0.0, ge=0, le=1000)
    api_batch_workers: int = Field(default=2, ge=1, le=16)
    api_search_queue: int = Field(default=256, ge=1)
    api_search_timeout_s: float = Field(default=30.0, gt=0)
    # Result lists' titles and prices are cached this long per API process (0: read Postgres
    # on every search); a product update shows in results at most that much later.
    api_summary_cache_s: float = Field(default=2.0, ge=0, le=300)
    api_summary_cache_items: int = Field(default=20_000, ge=1)
    # Signs the session and impression ids the API issues; every replica needs the same one.
    # Unset: a random key per process (sessions then end with the process).
    api_session_key: SecretStr | None = None
    # A session lives this long (then the caller gets a new one); clicks on an impression
    # count this long after it was served.
    api_session_ttl_s: float = Field(default=12 * 3600.0, gt=0)
    api_impression_ttl_s: float = Field(default=3600.0, gt=0)
    # Keys the click training's held-out split (training/click_head.Split): without it a
    # caller who can mint sessions could choose which of its clicks are held out.
    split_key: SecretStr | None = None
    # X-Api-Key values accepted; when any are set, reporting interactions needs one (and
    # searching too with api_keys_for_search).
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    api_keys_for_search: bool = False
    # Hosts the API may fetch image URLs from; empty = any public address (never private,
    # loopback or link-local ones unless listed here).
    api_image_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Image limits (bad images are dead-lettered, never crash the worker)
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    # PIL's full-size decode of one image, estimated from its header (RGBA 4000x4000 = 128 MiB)
    max_image_decode_bytes: int = 128 * 1024 * 1024
    image_fetch_timeout_s: float = 5.0
    # Local image files (``path`` / ``file://``) only inside these folders; empty = none at all.
    allowed_image_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    # Product events' image URLs: only to these hosts; empty = public addresses only.
    allowed_image_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Worker
    batch_max: int = 64
    # A batch closes at batch_max events or this long after its first: at 50 events/s, 0.5 s
    # gave produce -> searchable p50 0.76 s / p99 1.26 s, 0.2 s gives 0.40 / 0.71 with the
    # same burst throughput (`stylestream bench ingest`, NOTES.md).
    batch_within_s: float = 0.2
    # tries of one event that fails alone while its stores answer (then it is dead-lettered);
    # a store that does not answer is waited for, never counted here
    store_retries: int = 2
    retry_first_s: float = 0.5  # backoff while a dependency is down: doubling up to the cap
    retry_cap_s: float = 30.0
    worker_stall_s: float = 120.0  # /healthz fails when the batch loop is silent this long
    # A dead letter's original larger than this is kept in Postgres, not in the letter (which
    # must fit a Kafka message: base64 grows it by a third); the topic keeps letters this long.
    dead_letter_inline_bytes: int = 256 * 1024
    dead_letter_retention_days: float = 30.0
    metrics_port: int = 9108  # 0 disables the worker's /metrics, /healthz, /readyz server
    metrics_host: str = "127.0.0.1"  # 0.0.0.0 in containers, so Prometheus can scrape
    worker_web_port: int = 6066

    # Click miner (stylestream mine)
    miner_app_id: str = "stylestream-miner"
    miner_metrics_port: int = 9109  # 0 disables
    click_window_s: float = 1800.0  # a click pairs with an impression at most this much older
    random_negatives: int = 4
    negatives_refresh_s: float = 60.0  # how often the miner re-reads the catalogue's ids

    @field_validator(
        "allowed_image_roots",
        "allowed_image_hosts",
        "api_image_hosts",
        "api_keys",
        "api_trusted_proxies",
        mode="before",
    )
    @classmethod
    def _list_from_text(cls, value: object) -> object:
        """A list given as text, as in the environment: JSON (``["a", "b"]``) or ``a,b``;
        blank entries dropped (an empty API key would accept a missing header)."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else text.split(",")
        if isinstance(value, list):
            return [v for v in value if not (isinstance(v, str) and not v.strip())]
        return value

    @property
    def models_path(self) -> Path:
        return self.model_dir if self.model_dir is not None else self.data_dir / "models"

    @field_validator("base_model")
    @classmethod
    def _inside_models(cls, value: str) -> str:
        if value:
            models_name(value, "base_model")
        return value

    @field_validator("api_trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network.strip(), strict=False)  # a typo fails at start
        return [network.strip() for network in value]

    @property
    def split_key_bytes(self) -> bytes:
        return self.split_key.get_secret_value().encode() if self.split_key else b""

    @property
    def pg_dsn(self) -> str:
        dsn = (
            self.postgres_dsn.get_secret_value()
            if self.postgres_dsn
            else f"postgresql+psycopg2://postgres@127.0.0.1:{self.pg_port}/{self.pg_database}"
        )
        # the settings win over the DSN's own sslmode and sslrootcert
        given = {"sslmode": self.pg_sslmode, "sslrootcert": self.pg_sslrootcert}
        given = {k: v for k, v in given.items() if v}
        if given:
            parts = urlsplit(dsn)
            query = [(k, v) for k, v in parse_qsl(parts.query) if k not in given]
            query += [(k, str(v)) for k, v in given.items()]
            dsn = urlunsplit(parts._replace(query=urlencode(query)))
        return dsn

    def production_problems(self) -> list[str]:
        """What makes these settings unsafe to serve the public with (checked when
        ``env`` is production: the worker, the miner and the API then refuse to start)."""
        problems = []
        session_key = self.api_session_key.get_secret_value() if self.api_session_key else ""
        if len(session_key) < 32:
            problems.append("STYLESTREAM_API_SESSION_KEY is unset or under 32 characters")
        if len(self.split_key_bytes) < 32:
            problems.append("STYLESTREAM_SPLIT_KEY is unset or under 32 characters")
        keys = [k.get_secret_value() for k in self.api_keys]
        if not keys:
            problems.append("STYLESTREAM_API_KEYS is empty: interactions would be open")
        elif any(len(k) < 16 for k in keys):
            problems.append("STYLESTREAM_API_KEYS holds a key under 16 characters")
        dsn = self.postgres_dsn.get_secret_value() if self.postgres_dsn else ""
        if not dsn:
            problems.append("STYLESTREAM_POSTGRES_DSN is unset (the embedded dev database)")
        elif any(f":{word}@" in dsn for word in DEFAULT_PASSWORDS):
            problems.append("STYLESTREAM_POSTGRES_DSN uses a default password")
        if _sslmode(self.pg_dsn) not in ("require", "verify-ca", "verify-full"):
            problems.append(
                "Postgres without TLS: set STYLESTREAM_PG_SSLMODE (require or verify-*)"
            )
        if self.kafka_security_protocol != "SASL_SSL":
            problems.append("Kafka without SASL_SSL: set STYLESTREAM_KAFKA_SECURITY_PROTOCOL")
        elif not (self.kafka_sasl_username and self.kafka_sasl_password):
            problems.append("Kafka SASL without STYLESTREAM_KAFKA_SASL_USERNAME/_PASSWORD")
        if not self.milvus_token.get_secret_value():
            problems.append("STYLESTREAM_MILVUS_TOKEN is unset")
        if any(Path(root).resolve() == Path("/") for root in self.allowed_image_roots):
            problems.append("STYLESTREAM_ALLOWED_IMAGE_ROOTS opens the whole filesystem")
        return problems

    @property
    def products_topic(self) -> str:
        return topics.full_name(self.topic_prefix, topics.PRODUCTS)

    @property
    def dead_letter_topic(self) -> str:
        return topics.full_name(self.topic_prefix, topics.DEAD_LETTER)

    @property
    def impressions_topic(self) -> str:
        return topics.full_name(self.topic_prefix, topics.IMPRESSIONS)

    @property
    def interactions_topic(self) -> str:
        return topics.full_name(self.topic_prefix, topics.INTERACTIONS)

    @property
    def outfits_topic(self) -> str:
        return topics.full_name(self.topic_prefix, topics.OUTFITS)

    @property
    def training_pairs_topic(self) -> str:
        return topics.full_name(self.topic_prefix, topics.TRAINING_PAIRS)

    @property
    def kafka_url(self) -> str:
        return f"kafka://{self.kafka_bootstrap}"
