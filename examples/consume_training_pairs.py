"""Consume click-mined training pairs from the live topic with kafka-python.

    python examples/consume_training_pairs.py --bootstrap 127.0.0.1:19092 \
        --topic stylestream.training-pairs.v1 --group my-ml-team

Each record is one `training.pair` JSON object, keyed by impression id (JSON Schema:
`stylestream schemas export DIR` writes `training-pairs.v1.schema.json`). Delivery is at
least once: after a miner crash a pair may arrive twice, identical, so deduplicate on
`pair_id` (kept here in memory; use your own store for long runs). Offsets are committed
only after a pair is handled, so a crash of this consumer re-reads, never skips. For
history, `stylestream export pairs` reads Postgres.
"""

from __future__ import annotations

import argparse
import json
import sys

from kafka import KafkaConsumer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:19092")
    parser.add_argument("--topic", default="stylestream.training-pairs.v1")
    parser.add_argument("--group", default="training-pairs-example")
    parser.add_argument("--max", type=int, default=0, help="stop after this many pairs (0: run)")
    parser.add_argument("--idle-s", type=float, default=0, help="stop when idle this long")
    args = parser.parse_args()

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",  # a new group starts from the oldest pair kept
        enable_auto_commit=False,
        value_deserializer=json.loads,
        consumer_timeout_ms=int(args.idle_s * 1000) or float("inf"),
    )
    seen: set[str] = set()
    try:
        for record in consumer:
            pair = record.value
            if pair.get("schema_version") != 1 or pair.get("type") != "training.pair":
                print(f"skipping an unknown record at offset {record.offset}", file=sys.stderr)
            elif pair["pair_id"] not in seen:
                seen.add(pair["pair_id"])
                # Your training code goes here: pair["query"] (an image's base embedding as
                # float16 base64, or a product id; its "kind" says what was asked: "outfit"
                # pairs are what goes with query["product_id"] in query["role"], not what
                # looks like it), pair["positive"], pair["hard_negatives"]
                # (with pair["hard_negative_positions"]) and pair["random_negatives"].
                print(json.dumps({k: pair[k] for k in ("pair_id", "positive", "hard_negatives")}))
            consumer.commit()
            if args.max and len(seen) >= args.max:
                break
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
