"""Builds the processors and stores from settings: the one place they are assembled, used by
the worker, the CLI, the demo and (later) the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from processors.detector import RegionFinder, detector_path
from processors.embedding import OnnxEmbedder, base_model_path
from processors.images import ImageLimits
from processors.products import ProductProcessor
from processors.ranking import Weights
from processors.tagger import OnnxTagger, tagger_path
from stores.postgres import PostgresRepository, make_engine
from stores.registry import ServingRegistry
from stores.writer import ProductWriter
from stylestream.search import IndexNeighbours, SearchService
from stylestream.serving import ServingIndex
from stylestream.settings import Settings


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        fetch_timeout_s=settings.image_fetch_timeout_s,
        allowed_roots=tuple(settings.allowed_image_roots),
        allowed_hosts=frozenset(settings.allowed_image_hosts),
    )


def open_embedder(settings: Settings) -> OnnxEmbedder:
    return OnnxEmbedder(
        base_model_path(settings.models_path, settings.image_size),
        batch_size=settings.embed_batch_size,
        threads=settings.onnx_threads,
    )


def open_finder(settings: Settings) -> RegionFinder:
    return RegionFinder(detector_path(settings.models_path), threads=settings.onnx_threads)


def open_tagger(settings: Settings) -> OnnxTagger:
    return OnnxTagger(tagger_path(settings.models_path), threads=settings.onnx_threads)


def open_serving(settings: Settings, engine: Engine, embedder: OnnxEmbedder) -> ServingIndex:
    """The serving pointer (first start: the configured collection, base embeddings)."""
    return ServingIndex(settings, ServingRegistry(engine), embedder.model_version, embedder.dim)


def open_search(settings: Settings, repo: PostgresRepository | None = None) -> SearchService:
    """The two-stage search as served: the API, the CLI and the demo all use this one."""
    embedder = open_embedder(settings)
    engine = repo.engine if repo is not None else make_engine(settings.pg_dsn)
    return SearchService(
        ProductProcessor(
            embedder, image_limits(settings), open_finder(settings), open_tagger(settings)
        ),
        open_serving(settings, engine, embedder),
        Weights(
            settings.rank_weight_visual,
            settings.rank_weight_colour,
            settings.rank_weight_attributes,
        ),
        settings.rerank_candidates,
    )


@dataclass
class Components:
    processor: ProductProcessor
    targets: ServingIndex
    repo: PostgresRepository
    writer: ProductWriter

    def close(self) -> None:
        self.targets.close()
        self.repo.close()


def build(settings: Settings) -> Components:
    embedder = open_embedder(settings)
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    targets = open_serving(settings, repo.engine, embedder)
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
        writer=ProductWriter(targets, repo, settings.milvus_flush_rows),
    )
