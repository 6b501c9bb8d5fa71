"""Training pairs as files for ML teams: JSON Lines (one `training.pair` object per line, as on
the live topic) or Parquet (the same fields; the query as a JSON string)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

COLUMNS = (
    "pair_id",
    "impression_id",
    "session_id",
    "user_id",
    "query",
    "positive",
    "position",
    "hard_negatives",
    "hard_negative_positions",
    "random_negatives",
    "interaction",
    "ranker_model_version",
    "shown_at",
    "clicked_at",
    "mined_at",
)


def _record(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {c: row.get(c) for c in COLUMNS}
    for c in ("shown_at", "clicked_at", "mined_at"):
        value = out[c]
        if value is not None:
            out[c] = value.isoformat()
    return {"schema_version": 1, "type": "training.pair", **out}


def write_pairs(rows: Iterable[Mapping[str, Any]], out: Path, fmt: str) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        n = 0
        with out.open("w") as f:
            for row in rows:
                f.write(json.dumps(_record(row)) + "\n")
                n += 1
        return n
    if fmt != "parquet":
        raise ValueError(f"unknown format {fmt!r}: use parquet or jsonl")
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [_record(r) for r in rows]
    for r in records:
        r["query"] = json.dumps(r["query"])
    schema = pa.schema(
        [
            ("schema_version", pa.int32()),
            ("type", pa.string()),
            ("pair_id", pa.string()),
            ("impression_id", pa.string()),
            ("session_id", pa.string()),
            ("user_id", pa.string()),
            ("query", pa.string()),
            ("positive", pa.string()),
            ("position", pa.int32()),
            ("hard_negatives", pa.list_(pa.string())),
            ("hard_negative_positions", pa.list_(pa.int32())),
            ("random_negatives", pa.list_(pa.string())),
            ("interaction", pa.string()),
            ("ranker_model_version", pa.string()),
            ("shown_at", pa.string()),
            ("clicked_at", pa.string()),
            ("mined_at", pa.string()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(records, schema=schema), out)
    return len(records)
