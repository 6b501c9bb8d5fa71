"""Outfit records in, valid events out (issue 17): each record decoded and validated on its
own (bad JSON, an unknown schema version, a schema violation, a key that is not the outfit id:
failures of that record alone), the newest event per outfit kept (the store also orders by
version, with the same rule: this only spares it the superseded ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from processors.decoding import decode_json_event
from processors.errors import ProcessingError
from processors.products import Failure, RawEvent
from schemas.dead_letter import ErrorKind
from schemas.outfits import OutfitDelete, OutfitUpsert, parse_outfit_event

OutfitEvent = OutfitUpsert | OutfitDelete


@dataclass
class OutfitBatch:
    events: list[OutfitEvent] = field(default_factory=list)
    sources: dict[str, list[RawEvent]] = field(default_factory=dict)  # outfit id -> records
    failures: list[Failure] = field(default_factory=list)

    def halves(self) -> tuple[OutfitBatch, OutfitBatch] | None:
        """Two batches of half the events each (None for one event): to find the one a store
        refuses."""
        if len(self.events) < 2:
            return None
        middle = len(self.events) // 2
        parts = self.events[:middle], self.events[middle:]
        return tuple(  # type: ignore[return-value]
            OutfitBatch(list(p), {e.outfit_id: self.sources[e.outfit_id] for e in p}) for p in parts
        )


def newest(events: Sequence[OutfitEvent]) -> list[OutfitEvent]:
    """The newest event per outfit in a batch (a delete wins a tie), in first-seen order."""
    best: dict[str, OutfitEvent] = {}
    for e in events:
        held = best.get(e.outfit_id)
        if (
            held is None
            or e.version > held.version
            or (e.version == held.version and isinstance(e, OutfitDelete))
        ):
            best[e.outfit_id] = e
    return list(best.values())


def read_outfits(raws: Sequence[RawEvent]) -> OutfitBatch:
    batch = OutfitBatch()
    valid: list[OutfitEvent] = []
    for raw in raws:
        try:
            event = decode_json_event(raw.value, parse_outfit_event)
        except ProcessingError as exc:
            batch.failures.append(Failure(raw, exc.kind, str(exc)))
            continue
        if raw.topic and raw.key != event.outfit_id.encode():
            message = f"the record's key {raw.key!r:.80} is not its outfit id"
            batch.failures.append(Failure(raw, ErrorKind.KEY_MISMATCH, message))
            continue
        batch.sources.setdefault(event.outfit_id, []).append(raw)
        valid.append(event)
    batch.events = newest(valid)
    return batch
