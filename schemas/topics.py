"""Topic names. A breaking change to an event model gets a new name (``.v2``), never an edit."""

from __future__ import annotations

PRODUCTS = "products.v1"
DEAD_LETTER = "dead-letter.v1"
IMPRESSIONS = "impressions.v1"  # keyed by impression id
INTERACTIONS = "interactions.v1"  # keyed by impression id: co-partitioned with impressions

TRAINING_PAIRS = "training-pairs.v1"  # keyed by impression id
OUTFITS = "outfits.v1"  # keyed by outfit id

ALL = (PRODUCTS, DEAD_LETTER, IMPRESSIONS, INTERACTIONS, TRAINING_PAIRS, OUTFITS)


def full_name(prefix: str, name: str) -> str:
    """Topics are namespaced by a deployment prefix so several stacks can share one cluster."""
    return f"{prefix}{name}"
