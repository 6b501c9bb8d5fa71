"""Train the item-box regressor (processors/detector.py) on SYNTHETIC scenes, export it to ONNX.

A light CNN over the image at 64 px, joined with the foreground box, regresses the item's box
(fractions of the image). Scenes: synthetic garments on varied backdrops, plus Fashion-MNIST
photos (real, centred on black: their box is the photo's non-black extent) so the regressor
keeps the boxes the foreground rule already gets right. Loss: L1 plus 1 - IoU.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from processors.detector import DETECTOR_NAME, DetectorCard, detector_inputs, detector_path
from processors.roi import Box, foreground_region

INPUT_SIZE = 64


@dataclass(frozen=True)
class BoxSample:
    image: np.ndarray
    box: Box  # the true box


def fashion_mnist_box(grey: np.ndarray, level: int = 10) -> Box:
    ys, xs = np.nonzero(grey > level)
    if ys.size == 0:
        return Box(0, 0, grey.shape[1], grey.shape[0])
    return Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def _network() -> object:
    import torch
    from torch import nn

    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.BatchNorm2d(cout), nn.ReLU()
        )

    class BoxRegressor(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                block(3, 16), block(16, 32), block(32, 64), block(64, 64), nn.Flatten()
            )
            flat = 64 * (INPUT_SIZE // 16) ** 2
            self.head = nn.Sequential(nn.Linear(flat + 4, 256), nn.ReLU(), nn.Linear(256, 4))

        def forward(self, image: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
            z = torch.cat([self.features(image), prior], dim=1)
            # direct, not a correction of the prior: where the foreground rule fails its box is
            # the whole image, and a correction in logit space would start saturated
            out: torch.Tensor = torch.sigmoid(self.head(z))
            return out

    return BoxRegressor()


def _iou(a: object, b: object) -> object:
    import torch

    assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)
    ix = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    iy = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = ix * iy
    area = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area + area_b - inter + 1e-6)


def _mirror(boxes: Any) -> Any:
    import torch

    return torch.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], 1)


def train_detector(
    samples: Sequence[BoxSample],
    models_dir: Path,
    *,
    epochs: int = 25,
    seed: int = 0,
    log: object = print,
) -> Path:
    """Train, export ``roi-box-regressor.onnx`` + card into ``models_dir``, return its path."""
    import torch

    torch.manual_seed(seed)
    priors = [foreground_region(s.image).box for s in samples]
    pixels, prior = detector_inputs([s.image for s in samples], priors, INPUT_SIZE)
    target = np.array(
        [
            (s.box.x0 / w, s.box.y0 / h, s.box.x1 / w, s.box.y1 / h)
            for s in samples
            for h, w in [s.image.shape[:2]]
        ],
        dtype=np.float32,
    )
    x, p, y = torch.from_numpy(pixels), torch.from_numpy(prior), torch.from_numpy(target)
    net = _network()
    assert isinstance(net, torch.nn.Module)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * ((len(samples) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(samples), generator=gen)
        total = 0.0
        for start in range(0, len(samples), 64):
            idx = order[start : start + 64]
            xb = x[idx]
            if torch.rand(1, generator=gen).item() < 0.5:  # mirror: boxes mirror too
                xb = xb.flip(3)
                pb = torch.stack(
                    [1 - p[idx][:, 2], p[idx][:, 1], 1 - p[idx][:, 0], p[idx][:, 3]], 1
                )
                yb = torch.stack(
                    [1 - y[idx][:, 2], y[idx][:, 1], 1 - y[idx][:, 0], y[idx][:, 3]], 1
                )
            else:
                pb, yb = p[idx], y[idx]
            out = net(xb, pb)
            iou = _iou(out, yb)
            assert isinstance(iou, torch.Tensor)
            loss = (out - yb).abs().mean() + (1 - iou).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if callable(log) and (epoch % 5 == 4 or epoch == epochs - 1):
            log(f"detector epoch {epoch + 1}/{epochs}: loss {total / len(samples):.4f}")
    return _export(net, models_dir, pixels[:2], prior[:2])


def _export(net: object, models_dir: Path, pixels: np.ndarray, prior: np.ndarray) -> Path:
    import onnxruntime as ort
    import torch

    assert isinstance(net, torch.nn.Module)
    net.eval()
    models_dir.mkdir(parents=True, exist_ok=True)
    out = detector_path(models_dir)
    tmp = out.with_suffix(".onnx.tmp")
    example = (torch.from_numpy(pixels), torch.from_numpy(prior))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            net,
            example,
            str(tmp),
            input_names=["image", "prior"],
            output_names=["box"],
            dynamic_axes={"image": {0: "batch"}, "prior": {0: "batch"}, "box": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    with torch.no_grad():
        expected = net(*example).numpy()
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": pixels, "prior": prior})[0]
    if float(np.abs(got - expected).max()) > 1e-4:
        raise RuntimeError("detector ONNX export differs from torch")
    tmp.replace(out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    DetectorCard(f"{DETECTOR_NAME}-{digest[:8]}", INPUT_SIZE, digest).write(
        out.with_suffix(".json")
    )
    return out
