"""Shared fixtures. Integration fixtures (real Kafka, Postgres, Milvus) are in integration/."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.embedding import OnnxEmbedder, base_model_path
from processors.images import ImageLimits
from processors.products import ProductProcessor
from stylestream.settings import Settings


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def model_path(base_settings: Settings) -> Path:
    """The exported ONNX model; exported here once if this machine has none yet."""
    path = base_model_path(base_settings.models_path, base_settings.image_size)
    if not path.exists():
        from training.export import export_base_model

        export_base_model(base_settings.models_path, base_settings.image_size)
    return path


@pytest.fixture(scope="session")
def embedder(model_path: Path) -> OnnxEmbedder:
    return OnnxEmbedder(model_path, batch_size=16)


@pytest.fixture(scope="session")
def processor(embedder: OnnxEmbedder) -> ProductProcessor:
    return ProductProcessor(embedder, ImageLimits(max_bytes=2_000_000, max_pixels=4_000_000))
