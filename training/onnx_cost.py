"""A model's cost read from its ONNX graph: multiply-accumulates of every Conv, Gemm and MatMul
at batch 1 (the layers that hold nearly all the arithmetic; element-wise ops and pooling are
left out and said to be), and its measured batch-1 latency and batched throughput on this
machine. Papers quote EfficientNet-Lite0 at "0.39 GFLOPs": those are multiply-accumulates."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

COUNTED = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class Cost:
    macs: int  # multiply-accumulates at batch 1 in Conv, Gemm and MatMul
    parameters: int

    @property
    def gflops(self) -> float:
        return 2 * self.macs / 1e9


def _observed_shapes(model: onnx.ModelProto, image_size: int) -> dict[str, tuple[int, ...]]:
    """Every counted node's input and output shapes, observed by running the graph once at
    batch 1 (static shape inference stops at the exporter's computed paddings)."""
    import onnxruntime as ort

    graph = model.graph
    known = {o.name for o in graph.output} | {t.name for t in graph.initializer}
    counted = [node for node in graph.node if node.op_type in COUNTED]
    wanted = {n for node in counted for n in (*node.input, *node.output)}
    for name in sorted(wanted - known):
        graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    image = np.zeros((1, 3, image_size, image_size), np.float32)
    outputs = session.run(None, {graph.input[0].name: image})
    shapes = {o.name: tuple(v.shape) for o, v in zip(session.get_outputs(), outputs, strict=True)}
    shapes.update({t.name: tuple(t.dims) for t in graph.initializer})
    return shapes


def count_cost(path: Path, image_size: int) -> Cost:
    model = onnx.load(str(path))
    parameters = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    shapes = _observed_shapes(model, image_size)
    macs = 0
    for node in model.graph.node:
        if node.op_type not in COUNTED:
            continue
        out, first, second = shapes[node.output[0]], shapes[node.input[0]], shapes[node.input[1]]
        if node.op_type == "Conv":
            # out: N, Cout, H, W; weight: Cout, Cin/groups, kH, kW
            macs += int(np.prod(out)) * int(np.prod(second[1:]))
        else:  # (M x K) @ (K x N): every output element costs K
            macs += int(np.prod(out)) * int(first[-1])
    return Cost(macs=macs, parameters=parameters)


def measure_speed(
    path: Path, image_size: int, batch: int = 64, seconds: float = 3.0, threads: int = 0
) -> dict[str, float]:
    """Batch-1 latency (p50, ms) and batched throughput (images/s) on this machine's CPUs."""
    from processors.embedding import onnx_session

    session = onnx_session(path, threads)
    name = session.get_inputs()[0].name
    one = np.random.default_rng(0).standard_normal((1, 3, image_size, image_size), np.float32)
    many = np.repeat(one, batch, axis=0)
    for _ in range(3):
        session.run(None, {name: one})
    single: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(single) < 10:
        started = time.perf_counter()
        session.run(None, {name: one})
        single.append(time.perf_counter() - started)
    session.run(None, {name: many})
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or runs < 2:
        session.run(None, {name: many})
        runs += 1
    return {
        "batch1_p50_ms": round(float(np.percentile(single, 50)) * 1000, 3),
        "batched_images_per_s": round(runs * batch / (time.perf_counter() - started), 1),
    }
