"""Builds the processors and stores from settings: the one place they are assembled, for the
worker, the API, the CLI and the benches. Adapters get small typed configs, never the whole
settings object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

from sqlalchemy import Engine

from config.settings import Settings, models_name
from processors.binary_codes import BinaryCoder
from processors.detector import RegionFinder, detector_path
from processors.embedding import ModelCard, OnnxEmbedder, base_model_path, card_path
from processors.images import ImageLimits
from processors.products import ProductProcessor
from processors.ranking import Weights
from processors.tagger import OnnxTagger, tagger_path
from schemas.tables import text_collections
from search import IndexNeighbours, QueryEncoder, SearchService
from search.batching import BatchConfig
from search.modify import ModifySearch, RegisteredModifier
from search.outfits import CompleteTheLook, RegisteredCompat
from search.text import TextSearch
from stores.base import VectorIndex
from stores.binary import BinaryRerankIndex
from stores.codes import CodeIndexConfig, MilvusCodeIndex, code_collection_name
from stores.milvus import MilvusConfig, MilvusVectorIndex
from stores.postgres import PostgresRepository, make_engine
from stores.registry import ServingRegistry
from stores.reindex import ReindexConfig, Reindexer
from stores.serving import ServingConfig, ServingIndex
from stores.side_models import CompatModels, ModifyModels
from stores.text_serving import TextServing, TextServingConfig, TextVectors, load_text_model
from stores.vector_cache import VectorCache
from stores.writer import ProductWriter


def milvus_config(settings: Settings) -> MilvusConfig:
    return MilvusConfig(
        uri=settings.milvus_uri,
        token=settings.milvus_token.get_secret_value(),
        index_type=settings.milvus_index,
        search_consistency=settings.milvus_search_consistency,
    )


def open_collection(
    settings: Settings, collection: str, dim: int, coder: BinaryCoder | None = None
) -> VectorIndex:
    """A collection, created if missing: with ``settings`` bound, what the serving pointer and
    the re-index open their collections with (stores/serving.OpenIndex). With a ``coder``,
    its binary index beside it (created if missing), searched in serving mode "binary"."""
    config = milvus_config(settings)
    floats = MilvusVectorIndex.open(config, collection, dim)
    if coder is None:
        return floats
    codes = MilvusCodeIndex(
        config,
        code_collection_name(collection, coder.version),
        coder.bits,
        CodeIndexConfig(settings.binary_index, settings.binary_nlist, settings.binary_nprobe),
    )
    codes.ensure()
    return BinaryRerankIndex(
        floats,
        codes,
        coder,
        oversampling=settings.binary_oversampling,
        search_codes=settings.serving_mode == "binary",
        max_candidates=settings.binary_max_candidates,
        cache=VectorCache(settings.binary_rerank_cache_mb * 2**20)
        if settings.binary_rerank_cache_mb
        else None,
    )


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        max_decode_bytes=settings.max_image_decode_bytes,
        fetch_timeout_s=settings.image_fetch_timeout_s,
        allowed_roots=tuple(settings.allowed_image_roots),
        allowed_hosts=frozenset(settings.allowed_image_hosts),
    )


def api_image_limits(settings: Settings) -> ImageLimits:
    """Query images from the public API: the same limits, but URLs only to the API's own
    allowed hosts or, when none are listed, to public addresses."""
    return replace(
        image_limits(settings),
        allowed_hosts=frozenset(settings.api_image_hosts),
        public_only=True,
        allowed_roots=(),
    )


def base_model_file(settings: Settings) -> Path:
    """The configured base model (STYLESTREAM_BASE_MODEL), else the pretrained Lite0."""
    if settings.base_model:
        return models_file(settings, settings.base_model, "STYLESTREAM_BASE_MODEL")
    return base_model_path(settings.models_path, settings.image_size)


def models_file(settings: Settings, name: str, what: str) -> Path:
    """An .onnx file named relative to the models folder, refused when it leads out of it
    (``..``, an absolute path, or a link)."""
    path = (settings.models_path / models_name(name, what)).resolve()
    if not path.is_relative_to(settings.models_path.resolve()):  # a link out of it
        raise ValueError(f"{what} leads out of the models folder: {path}")
    return path


def open_embedder(settings: Settings) -> OnnxEmbedder:
    return OnnxEmbedder(
        base_model_file(settings),
        batch_size=settings.embed_batch_size,
        threads=settings.onnx_threads,
    )


def open_finder(settings: Settings) -> RegionFinder:
    return RegionFinder(detector_path(settings.models_path), threads=settings.onnx_threads)


def open_tagger(settings: Settings) -> OnnxTagger:
    return OnnxTagger(tagger_path(settings.models_path), threads=settings.onnx_threads)


def image_path(settings: Settings) -> ProductProcessor:
    """The served image path (box, embedding, colour, attributes) without any store."""
    return ProductProcessor(
        open_embedder(settings),
        image_limits(settings),
        open_finder(settings),
        open_tagger(settings),
    )


def base_model(settings: Settings) -> tuple[str, int]:
    """The base embedding model's version and dimension, from its card."""
    card = ModelCard.read(card_path(base_model_file(settings)))
    return card.model_version, card.dim


def open_serving(settings: Settings, engine: Engine, base: tuple[str, int]) -> ServingIndex:
    """The serving pointer (first start: the configured collection, base embeddings)."""
    config = ServingConfig(settings.milvus_collection, settings.serving_refresh_s, *base)
    return ServingIndex(config, ServingRegistry(engine), partial(open_collection, settings))


def weights(settings: Settings) -> Weights:
    return Weights(
        settings.rank_weight_visual, settings.rank_weight_colour, settings.rank_weight_attributes
    )


def batch_config(settings: Settings) -> BatchConfig:
    """How the API batches concurrent image searches (search/batching.py)."""
    return BatchConfig(
        max_batch=settings.api_batch_max,
        max_wait_s=settings.api_batch_wait_ms / 1000,
        queue_limit=settings.api_search_queue,
        workers=settings.api_batch_workers,
        timeout_s=settings.api_search_timeout_s,
    )


def open_search(settings: Settings, repo: PostgresRepository | None = None) -> SearchService:
    """The two-stage search as served: the API, the CLI and the demo all use this one."""
    processor = image_path(settings)
    engine = repo.engine if repo is not None else make_engine(settings.pg_dsn)
    embedder = processor.embedder
    targets = open_serving(settings, engine, (embedder.model_version, embedder.dim))
    query = open_query_encoder(settings, ServingRegistry(engine)) if settings.query_model else None
    return SearchService(processor, targets, weights(settings), settings.rerank_candidates, query)


def open_text_serving(settings: Settings, engine: Engine, base_version: str) -> TextServing:
    """The text collections' pointer (none serves before the first text re-index)."""
    config = TextServingConfig(base_version, settings.serving_refresh_s, settings.onnx_threads)
    return TextServing(
        config, ServingRegistry(engine, text_collections), partial(open_collection, settings)
    )


def open_text_search(
    settings: Settings, repo: PostgresRepository, search: SearchService | None = None
) -> TextSearch:
    """Text queries as served: the API passes its image search, to share its pointer."""
    base = base_model(settings)
    targets = search.targets if search is not None else open_serving(settings, repo.engine, base)
    return TextSearch(repo, targets, open_text_serving(settings, repo.engine, base[0]))


def open_modify_search(
    settings: Settings, repo: PostgresRepository, search: SearchService
) -> ModifySearch:
    """Modifier queries as served: the API's image search's processor and pointer, the
    registry's serving modifier model."""
    models = ModifyModels(repo.engine)
    source = RegisteredModifier(
        models.serving_version,
        models.artifact,
        settings.serving_refresh_s,
        settings.onnx_threads,
    )
    return ModifySearch(search.processor, search.targets, repo, source)


def open_complete_the_look(
    settings: Settings, repo: PostgresRepository, search: SearchService
) -> CompleteTheLook:
    """Complete the look as served: the API's image search's pointer, the registry's serving
    compatibility model."""
    models = CompatModels(repo.engine)
    source = RegisteredCompat(
        models.serving_version,
        models.artifact,
        settings.serving_refresh_s,
        settings.onnx_threads,
    )
    return CompleteTheLook(search.targets, repo, source)


def open_query_encoder(settings: Settings, registry: ServingRegistry) -> QueryEncoder:
    """The registered compact query model ``STYLESTREAM_QUERY_MODEL`` names."""
    model = registry.query_model(settings.query_model)
    if model is None:
        raise LookupError(
            f"STYLESTREAM_QUERY_MODEL={settings.query_model!r} is not a registered query model "
            "(`stylestream train compact` registers one)"
        )
    embedder = OnnxEmbedder.from_artifact(
        model.artifact,
        ModelCard.from_dict(model.card),
        batch_size=settings.embed_batch_size,
        threads=settings.onnx_threads,
    )
    return QueryEncoder(embedder, model.gallery_model_version)


def open_reindexer(
    settings: Settings,
    repo: PostgresRepository,
    progress: Callable[[int, int], None] | None = None,
) -> Reindexer:
    """A re-index into new collections beside the configured one (stores/reindex.py)."""
    config = ReindexConfig(
        settings.milvus_collection,
        *base_model(settings),
        refresh_s=settings.serving_refresh_s,
        alias=settings.milvus_alias,
    )
    return Reindexer(
        config, ServingRegistry(repo.engine), repo, partial(open_collection, settings), progress
    )


def open_text_reindexer(
    settings: Settings,
    repo: PostgresRepository,
    progress: Callable[[int, int], None] | None = None,
) -> Reindexer:
    """A re-index of product text vectors into new collections (<collection>_text__...)."""
    config = ReindexConfig(
        f"{settings.milvus_collection}_text",
        *base_model(settings),
        refresh_s=settings.serving_refresh_s,
    )
    registry = ServingRegistry(repo.engine, text_collections)

    def vectoriser(model_version: str) -> TextVectors:
        encoder = load_text_model(
            registry, model_version, config.base_model_version, settings.onnx_threads
        )
        return TextVectors(encoder)

    open_index = partial(open_collection, settings)
    return Reindexer(config, registry, repo, open_index, progress, vectoriser)


@dataclass
class Components:
    processor: ProductProcessor
    targets: ServingIndex
    repo: PostgresRepository
    writer: ProductWriter
    text_targets: TextServing

    def close(self) -> None:
        self.targets.close()
        self.text_targets.close()
        self.repo.close()


def build(settings: Settings) -> Components:
    """What a worker holds: the image path with the index's category vote, the serving
    pointer, the repository and the idempotent writer."""
    embedder = open_embedder(settings)
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    targets = open_serving(settings, repo.engine, (embedder.model_version, embedder.dim))
    text_targets = open_text_serving(settings, repo.engine, embedder.model_version)
    return Components(
        processor=ProductProcessor(
            embedder,
            image_limits(settings),
            open_finder(settings),
            open_tagger(settings),
            IndexNeighbours(targets),
        ),
        targets=targets,
        repo=repo,
        writer=ProductWriter(targets, repo, settings.milvus_flush_rows, text_targets),
        text_targets=text_targets,
    )
