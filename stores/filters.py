"""The neutral filter model: plain data that every vector index adapter translates into its own
query language (Milvus expressions in stores/milvus.py, predicates in stores/memory.py), so no
caller ever writes a backend's syntax."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Effort:
    """How hard an approximate search looks, per request; ``None`` keeps the index's setting.
    A backend without the knob ignores it (an exact index has nothing to trade)."""

    oversampling: int | None = None  # binary index: Hamming candidates per result wanted
    nprobe: int | None = None  # IVF indexes (the binary index's, IVF_FLAT): lists searched


@dataclass(frozen=True)
class Filters:
    """AND-ed conditions on indexed products; ``None`` / empty means no condition."""

    category: str | None = None
    colour: str | None = None  # the primary colour's palette name
    min_price: float | None = None
    max_price: float | None = None
    version: int | None = None
    attributes: tuple[str, ...] = ()  # taxonomy keys: any of them within a group, all groups

    def attribute_groups(self) -> list[list[str]]:
        """The attribute keys by taxonomy group (``group.value``), first-seen order: a product
        needs one key of each group."""
        by_group: dict[str, list[str]] = {}
        for key in dict.fromkeys(self.attributes):
            by_group.setdefault(key.split(".", 1)[0], []).append(key)
        return list(by_group.values())
