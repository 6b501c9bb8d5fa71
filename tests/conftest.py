"""Shared fixtures. Integration fixtures (real Kafka, Postgres, Milvus) are in integration/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from deploy.local import services
from deploy.local.milvus_server import milvus_standalone
from deploy.local.process import free_port
from processors.detector import RegionFinder, detector_path
from processors.embedding import OnnxEmbedder, base_model_path
from processors.images import ImageLimits
from processors.products import ProductProcessor
from processors.tagger import OnnxTagger, tagger_path


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def running_services(base_settings: Settings) -> Settings:
    """The local Kafka, Postgres and Milvus Lite server (`stylestream dev up`), started if
    they are not running."""
    services.up(base_settings)
    return base_settings


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
def attribute_models(base_settings: Settings, embedder: OnnxEmbedder) -> tuple[Path, Path]:
    """The trained box regressor and tagger; trained here once if this machine has none yet
    (`scripts/setup.sh` trains them: `stylestream train attributes`)."""
    models = base_settings.models_path
    if not (detector_path(models).exists() and tagger_path(models).exists()):
        from training.attributes import train_attributes

        train_attributes(models, embedder)
    return detector_path(models), tagger_path(models)


@pytest.fixture(scope="session")
def finder(attribute_models: tuple[Path, Path]) -> RegionFinder:
    return RegionFinder(attribute_models[0])


@pytest.fixture(scope="session")
def tagger(attribute_models: tuple[Path, Path]) -> OnnxTagger:
    return OnnxTagger(attribute_models[1])


@pytest.fixture(scope="session")
def processor(embedder: OnnxEmbedder, finder: RegionFinder, tagger: OnnxTagger) -> ProductProcessor:
    """The served image path (learned boxes, attributes); category fusion needs an index, so
    stores-backed tests add it (``IndexNeighbours``)."""
    limits = ImageLimits(max_bytes=2_000_000, max_pixels=4_000_000)
    return ProductProcessor(embedder, limits, finder, tagger)


@pytest.fixture(scope="session")
def milvus_standalone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """One real Milvus 2.3.5 standalone server for the session, (uri, pid): its embedded
    etcd's peer port is fixed, so two cannot run on one machine."""
    with milvus_standalone(tmp_path_factory.mktemp("milvus-server"), free_port()) as server:
        yield server
