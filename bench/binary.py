"""`stylestream bench binary`: a Hamming index over binary codes, reranked with the float
vectors, against float FLAT and float HNSW on the same vectors, in one run on a real Milvus
standalone server (Milvus Lite 3 has no binary vectors).

Per scale and code kind (median-centred sign of every dimension; PCA + ITQ): bytes per vector,
the loaded collection's RSS (a fresh server's, before and after loading only it), recall@10
against exact float search and single-query p50/p99 at each oversampling (Hamming top
10 x oversampling, then exact cosine over the candidates' float vectors, read from a float16
array in the process or fetched from Milvus by id).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from bench.judging import recall_at_k
from bench.milvus_bench import _hits, _rss_mb, _wait_for_index
from bench.vectors import exact_top_k
from processors.binary_codes import BinaryCoder
from training.binary_codes import fit_itq, fit_sign

K = 10
OVERSAMPLING = (1, 2, 4, 8, 16)
CONSISTENCY = "Bounded"  # static data: no time-tick wait
HNSW = {"M": 16, "efConstruction": 128}
HNSW_EF = 64


@dataclass(frozen=True)
class BinaryBenchSizes:
    scales: tuple[int, ...] = (100_000,)
    queries: int = 1000
    single_queries: int = 200
    itq_bits: tuple[int, ...] = (512, 1024)
    fit_sample: int = 20_000
    nprobe_share: float = 0.025  # of the IVF lists probed: the same share at every scale
    settle_s: float = 5.0  # for a fresh server's memory to settle, before and after a load


def _percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


class Collection:
    """One bench collection on the server: id + one vector field, indexed and loaded."""

    def __init__(self, client: MilvusClient, name: str, dtype: DataType, dim: int) -> None:
        self.client, self.name = client, name
        if client.has_collection(name):
            client.drop_collection(name)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", dtype, dim=dim)
        client.create_collection(name, schema=schema, consistency_level="Strong")

    def fill(
        self, rows: np.ndarray | Sequence[bytes], index: str, metric: str, params: dict[str, Any]
    ) -> float:
        """Rows go in blocks, each made into Python values only when sent (1M float vectors as
        one list would take ~40 GB)."""
        started = time.perf_counter()
        for start in range(0, len(rows), 5000):
            block = rows[start : start + 5000]
            values = block.tolist() if isinstance(block, np.ndarray) else block
            self.client.insert(
                self.name, [{"id": start + i, "vec": v} for i, v in enumerate(values)]
            )
        self.client.flush(self.name)
        spec = self.client.prepare_index_params()
        spec.add_index(field_name="vec", index_type=index, metric_type=metric, params=params)
        self.client.create_index(self.name, spec)
        _wait_for_index(self.client, self.name, len(rows))
        self.client.load_collection(self.name)
        return time.perf_counter() - started

    def search(
        self, data: list[Any], limit: int, metric: str, params: dict[str, Any]
    ) -> list[list[int]]:
        hits = self.client.search(
            self.name,
            data=data,
            limit=limit,
            anns_field="vec",
            search_params={"metric_type": metric, "params": params},
            consistency_level=CONSISTENCY,
        )
        return [[int(h["id"]) for h in row] for row in hits]

    def vectors(self, ids: list[int]) -> np.ndarray:
        rows = self.client.get(
            self.name, ids=ids, output_fields=["vec"], consistency_level=CONSISTENCY
        )
        by_id = {int(r["id"]): r["vec"] for r in rows}
        return np.asarray([by_id[i] for i in ids], dtype=np.float32)


class FreshServer:
    """The bench's private standalone server, restarted to read one collection's memory: a
    fresh process's RSS before and after loading only it. In one long-lived process the
    difference is noise (released and dropped collections stay in the allocator's pools:
    earlier runs measured negative sizes)."""

    def __init__(self, data_dir: Path, settle_s: float) -> None:
        self.data_dir, self.port, self.settle_s = data_dir, 0, settle_s
        self._stack: contextlib.ExitStack | None = None
        self.uri, self.pid = "", 0

    def start(self) -> str:
        """On a fresh port each time: a restart on the last one finds it still bound for a
        moment, and the server then quietly listens on the next one."""
        from deploy.local.milvus_server import milvus_standalone
        from deploy.local.process import free_port

        self.port = free_port()
        self._stack = contextlib.ExitStack()
        self.uri, self.pid = self._stack.enter_context(milvus_standalone(self.data_dir, self.port))
        return self.uri

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _connect(self, timeout_s: float = 120.0) -> MilvusClient:
        """A client of the restarted server: its proxy may refuse connections for a while
        after its health check passes."""
        deadline = time.monotonic() + timeout_s
        while True:
            client = MilvusClient(uri=self.uri, timeout=1200)
            try:
                client.list_collections()
                return client
            except MilvusException:
                client.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def loaded_rss_mb(self, name: str) -> float:
        client = MilvusClient(uri=self.uri, timeout=1200)
        for other in client.list_collections():  # a restart would load them again
            client.release_collection(other)
        client.close()
        self.stop()
        self.start()
        client = self._connect()
        time.sleep(self.settle_s)
        empty = _rss_mb(self.pid)
        client.load_collection(name)
        time.sleep(self.settle_s)
        loaded = _rss_mb(self.pid)
        client.release_collection(name)
        client.close()
        return round(loaded - empty, 1)


def _rerank(query: np.ndarray, ids: list[int], vectors: np.ndarray) -> list[int]:
    order = np.argsort(-(vectors @ query), kind="stable")[:K]
    return [ids[i] for i in order]


def _float_found(coll: Collection, queries: np.ndarray, params: dict[str, Any]) -> list[list[int]]:
    found: list[list[int]] = []
    for start in range(0, len(queries), 100):
        found += coll.search(queries[start : start + 100].tolist(), K, "IP", params)
    return found


def _float_result(
    coll: Collection,
    queries: np.ndarray,
    truth: np.ndarray,
    n_single: int,
    params: dict[str, Any],
    extra: dict[str, tuple[np.ndarray, np.ndarray]],
) -> dict[str, Any]:
    found = _float_found(coll, queries, params)
    more = {
        f"{name}_recall_at_10": round(recall_at_k(_hits(_float_found(coll, q, params), t)), 4)
        for name, (q, t) in extra.items()
    }
    times = []
    for q in queries[:n_single]:
        started = time.perf_counter()
        coll.search([q.tolist()], K, "IP", params)
        times.append(time.perf_counter() - started)
    recall = round(recall_at_k(_hits(found, truth)), 4)
    return {"recall_at_10": recall, **more, **_percentiles(times)}


def _code_result(
    coder: BinaryCoder,
    binary: Collection,
    floats: Collection,
    store: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    sizes: BinaryBenchSizes,
    nprobe: int,
    extra: dict[str, tuple[np.ndarray, np.ndarray]],
) -> list[dict[str, Any]]:
    codes = [bytes(c) for c in coder.encode(queries)]
    params = {"nprobe": nprobe}
    out = []
    for over in OVERSAMPLING:
        limit = K * over
        candidates, local = _reranked(coder, binary, store, queries, limit, params)
        row: dict[str, Any] = {
            "oversampling": over,
            "hamming_only_recall_at_10": round(recall_at_k(_hits(candidates, truth)), 4),
            "recall_at_10": round(recall_at_k(_hits(local, truth)), 4),
        }
        for name, (more, more_truth) in extra.items():
            found = _reranked(coder, binary, store, more, limit, params)[1]
            row[f"{name}_recall_at_10"] = round(recall_at_k(_hits(found, more_truth)), 4)
        for source in ("float16_in_process", "milvus_by_id"):
            times, found = [], []
            for q, code in zip(
                queries[: sizes.single_queries], codes[: sizes.single_queries], strict=True
            ):
                started = time.perf_counter()
                ids = binary.search([code], limit, "HAMMING", params)[0]
                vecs = (
                    store[ids].astype(np.float32)
                    if source != "milvus_by_id"
                    else floats.vectors(ids)
                )
                found.append(_rerank(q, ids, vecs))
                times.append(time.perf_counter() - started)
            row[source] = {
                **_percentiles(times),
                "recall_at_10": round(recall_at_k(_hits(found, truth[: len(found)])), 4),
            }
        out.append(row)
    return out


def _reranked(
    coder: BinaryCoder,
    binary: Collection,
    store: np.ndarray,
    queries: np.ndarray,
    limit: int,
    params: dict[str, Any],
) -> tuple[list[list[int]], list[list[int]]]:
    """Each query's Hamming candidates (batched searches), and their float16 rerank."""
    codes = [bytes(c) for c in coder.encode(queries)]
    candidates: list[list[int]] = []
    for start in range(0, len(codes), 100):
        candidates += binary.search(codes[start : start + 100], limit, "HAMMING", params)
    found = [
        _rerank(q, c, store[c].astype(np.float32)) for q, c in zip(queries, candidates, strict=True)
    ]
    return candidates, found


def _scale(
    client: MilvusClient,
    data: np.ndarray,
    queries: np.ndarray,
    sizes: BinaryBenchSizes,
    log: Callable[[str], None],
    more_queries: dict[str, np.ndarray],
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], str]]]:
    """The scale's figures, and its collections (kept, released) for the memory pass."""
    n, dim = data.shape
    truth = exact_top_k(data, queries, K)
    extra = {name: (q, exact_top_k(data, q, K)) for name, q in more_queries.items()}
    result: dict[str, Any] = {"vectors": n, "dim": dim, "float32_bytes_per_vector": 4 * dim}
    kept: list[tuple[dict[str, Any], str]] = []  # (result entry, collection) for the RSS pass
    floats = Collection(client, f"bin_bench_flat_{n}", DataType.FLOAT_VECTOR, dim)
    build = floats.fill(data, "FLAT", "IP", {})
    result["float_flat"] = {
        "build_s": round(build, 1),
        **_float_result(floats, queries, truth, sizes.single_queries, {}, extra),
    }
    kept.append((result["float_flat"], floats.name))
    log(f"  float FLAT: {result['float_flat']}")
    client.release_collection(floats.name)
    hnsw = Collection(client, f"bin_bench_hnsw_{n}", DataType.FLOAT_VECTOR, dim)
    build = hnsw.fill(data, "HNSW", "IP", HNSW)
    result["float_hnsw"] = {
        "index": HNSW,
        "ef": HNSW_EF,
        "build_s": round(build, 1),
        **_float_result(hnsw, queries, truth, sizes.single_queries, {"ef": HNSW_EF}, extra),
    }
    kept.append((result["float_hnsw"], hnsw.name))
    log(f"  float HNSW: {result['float_hnsw']}")
    client.release_collection(hnsw.name)
    store = data.astype(np.float16)
    sample = data[np.random.default_rng(1).choice(n, min(n, sizes.fit_sample), replace=False)]
    result["float16_store_mb"] = round(store.nbytes / 2**20, 1)
    result["codes"] = []
    coders = [fit_sign(sample)] + [fit_itq(sample, bits=b) for b in sizes.itq_bits]
    nlist = int(min(4096, max(64, 4 * np.sqrt(n))))
    nprobe = max(8, round(nlist * sizes.nprobe_share))
    for coder in coders:
        binary = Collection(
            client,
            f"bin_bench_{coder.kind.replace('-', '_')}_{n}",
            DataType.BINARY_VECTOR,
            coder.bits,
        )
        build = binary.fill(
            [bytes(c) for c in coder.encode(data)], "BIN_IVF_FLAT", "HAMMING", {"nlist": nlist}
        )
        client.load_collection(floats.name)  # the rerank's source by id
        entry = {
            "kind": coder.kind,
            "bits": coder.bits,
            "bytes_per_vector": coder.bytes_per_vector,
            "share_of_float32": round(coder.bytes_per_vector / (4 * dim), 4),
            "index": {"type": "BIN_IVF_FLAT", "nlist": nlist, "nprobe": nprobe},
            "build_s": round(build, 1),
            "settings": _code_result(
                coder, binary, floats, store, queries, truth, sizes, nprobe, extra
            ),
        }
        log(f"  {coder.kind}: {entry['settings']}")
        result["codes"].append(entry)
        kept.append((entry, binary.name))
        client.release_collection(binary.name)
        client.release_collection(floats.name)
    return result, kept


def report_header(queries: int, real: int) -> dict[str, Any]:
    versions = {}
    for pkg in ("pymilvus", "milvus", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "absent"
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": versions,
        "vectors": f"real base embeddings of {real} Fashion-MNIST catalogue photos, then "
        "SYNTHETIC fill: real embeddings jittered with Gaussian noise (bench/binary_data.py)",
        "queries": f"{queries} held-out Fashion-MNIST test photos (real)",
        "recall": "recall@10 against exact float cosine search over the same vectors",
    }


def run_binary_bench(
    uri: str,
    real: np.ndarray,
    queries: np.ndarray,
    sizes: BinaryBenchSizes,
    fill: Callable[[np.ndarray, int], np.ndarray],
    log: Callable[[str], None] = print,
    more_queries: dict[str, np.ndarray] | None = None,
    server: FreshServer | None = None,
) -> dict[str, Any]:
    """``more_queries``: other query sets, judged on recall only (``<name>_recall_at_10``).
    ``server``: the bench's own server, restarted to read each index's memory
    (``index_rss_mb``); None (a shared server) leaves that figure out."""
    report = report_header(sizes.queries, len(real))
    report["scales"] = []
    for n in sizes.scales:
        log(f"[binary] {n} vectors")
        client = MilvusClient(uri=server.uri if server else uri, timeout=1200)
        result, kept = _scale(client, fill(real, n), queries, sizes, log, more_queries or {})
        client.close()
        try:
            for entry, name in kept:
                if server is not None:
                    entry["index_rss_mb"] = server.loaded_rss_mb(name)
                    log(f"  {name}: {entry['index_rss_mb']} MB loaded")
        finally:
            client = MilvusClient(uri=server.uri if server else uri, timeout=1200)
            for _, name in kept:
                client.drop_collection(name)
            client.close()
        report["scales"].append(result)
    return report


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scales = report["scales"]
    fig, axes = plt.subplots(2, len(scales), figsize=(6 * len(scales), 8), squeeze=False)
    for col, scale in enumerate(scales):
        recall_ax, p99_ax = axes[0][col], axes[1][col]
        for code in scale["codes"]:
            xs = [s["oversampling"] for s in code["settings"]]
            label = f"{code['kind']} ({code['bytes_per_vector']} B)"
            line = recall_ax.plot(xs, [s["recall_at_10"] for s in code["settings"]], "o-",
                                  label=label)[0]  # fmt: skip
            shots = [s.get("real_shot_recall_at_10") for s in code["settings"]]
            if all(v is not None for v in shots):
                recall_ax.plot(xs, shots, "x--", color=line.get_color(),
                               label=f"{label}, SYNTHETIC real shots")  # fmt: skip
            for source, style in (("float16_in_process", "o-"), ("milvus_by_id", "s--")):
                p99 = [s[source]["p99_ms"] for s in code["settings"]]
                p99_ax.plot(xs, p99, style, label=f"{label}, rerank {source}")
        recall_ax.axhline(
            scale["float_hnsw"]["recall_at_10"], color="grey", ls=":", label="float HNSW"
        )
        if "real_shot_recall_at_10" in scale["float_hnsw"]:
            recall_ax.axhline(scale["float_hnsw"]["real_shot_recall_at_10"], color="grey",
                              ls="-.", label="float HNSW, real shots")  # fmt: skip
        p99_ax.axhline(scale["float_hnsw"]["p99_ms"], color="grey", ls=":", label="float HNSW")
        p99_ax.axhline(scale["float_flat"]["p99_ms"], color="black", ls=":", label="float FLAT")
        recall_ax.set(
            title=f"{scale['vectors']} vectors: recall@10 vs exact float",
            xscale="log",
            xlabel="oversampling",
            ylabel="recall@10",
        )
        p99_ax.set(title="single-query p99", xscale="log", xlabel="oversampling", ylabel="ms")
        recall_ax.legend(fontsize=7)
        p99_ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(settings_models: Path, image_size: int, data_dir: Path, sizes: BinaryBenchSizes,
        out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:  # fmt: skip
    """The whole bench: vectors (cached real embeddings, SYNTHETIC fill), a private Milvus
    standalone server under ``data_dir``, JSON and PNG under ``out`` (a folder)."""
    from bench.binary_data import filled, real_embeddings, shot_embeddings
    from processors.embedding import OnnxEmbedder, base_model_path

    embedder = OnnxEmbedder(base_model_path(settings_models, image_size), batch_size=64)
    cache = data_dir / "bench-cache"
    real = real_embeddings(embedder, cache, "train", min(60_000, max(sizes.scales)), log)
    queries = real_embeddings(embedder, cache, "t10k", sizes.queries, log)
    shots = {"real_shot": shot_embeddings(embedder, cache, sizes.queries, log)}
    server = FreshServer(data_dir / "bench-milvus-binary", sizes.settle_s)
    try:
        uri = server.start()
        report = run_binary_bench(uri, real, queries, sizes, filled, log, shots, server)
    finally:
        server.stop()
        shutil.rmtree(data_dir / "bench-milvus-binary", ignore_errors=True)  # ~35 GB at 1M
    report["model_version"] = embedder.model_version
    report["real_shot_queries"] = (
        f"{sizes.queries} SYNTHETIC real shots of the same test photos (training/real_shots.py, "
        "seed 7): real_shot_recall_at_10, recall only"
    )
    out.mkdir(parents=True, exist_ok=True)
    write(report, out / "binary.json")
    plot(report, out / "binary.png")
    return report
