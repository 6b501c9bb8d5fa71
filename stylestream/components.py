"""Builds the processors and stores from settings: the one place they are assembled, used by
the worker, the CLI, the demo and (later) the API."""

from __future__ import annotations

from dataclasses import dataclass

from processors.detector import RegionFinder, detector_path
from processors.embedding import OnnxEmbedder, base_model_path
from processors.images import ImageLimits
from processors.products import ProductProcessor
from processors.ranking import Weights
from processors.tagger import OnnxTagger, tagger_path
from schemas.milvus import product_collection
from stores.milvus import MilvusVectorIndex
from stores.postgres import PostgresRepository
from stores.writer import ProductWriter
from stylestream.search import IndexNeighbours, SearchService
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


def open_index(settings: Settings, dim: int) -> MilvusVectorIndex:
    index = MilvusVectorIndex(
        settings.milvus_uri,
        settings.milvus_collection,
        product_collection(dim),
        token=settings.milvus_token,
        index_type=settings.milvus_index,
        search_consistency=settings.milvus_search_consistency,
    )
    index.ensure()
    return index


def open_search(settings: Settings) -> SearchService:
    """The two-stage search as served: the API, the CLI and the demo all use this one."""
    embedder = open_embedder(settings)
    return SearchService(
        ProductProcessor(
            embedder, image_limits(settings), open_finder(settings), open_tagger(settings)
        ),
        open_index(settings, embedder.dim),
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
    index: MilvusVectorIndex
    repo: PostgresRepository
    writer: ProductWriter

    def close(self) -> None:
        self.index.close()
        self.repo.close()


def build(settings: Settings) -> Components:
    embedder = open_embedder(settings)
    index = open_index(settings, embedder.dim)
    repo = PostgresRepository.from_dsn(settings.pg_dsn)
    return Components(
        processor=ProductProcessor(
            embedder,
            image_limits(settings),
            open_finder(settings),
            open_tagger(settings),
            IndexNeighbours(index),
        ),
        index=index,
        repo=repo,
        writer=ProductWriter(index, repo, settings.milvus_flush_rows),
    )
