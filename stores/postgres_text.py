"""Text search in Postgres: the neutral filters and weighted terms translated into SQL over the
products' full-text vector (GIN-indexed, migration 0011). Query words reach Postgres only as
bound parameters, and only as ASCII words (processors/text.py), so no tsquery syntax of a
user's survives into a query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, literal_column, or_
from sqlalchemy import select as sql_select

from processors.text import Term
from schemas.tables import product_attributes, products
from stores.filters import Filters

ENGLISH: ColumnElement[object] = literal_column("'english'::regconfig")


def filter_clauses(filters: Filters | None) -> list[ColumnElement[bool]]:
    """What stores/milvus.py's expression and stores/memory.py's ``matches`` mean, in SQL."""
    if filters is None:
        return []
    f, c = filters, products.c
    out: list[ColumnElement[bool]] = []
    if f.category is not None:
        out.append(c.category == f.category)
    if f.colour is not None:
        out.append(c.primary_colour == f.colour)
    if f.min_price is not None:
        out.append(c.price >= f.min_price)
    if f.max_price is not None:
        out.append(c.price <= f.max_price)
    if f.version is not None:
        out.append(c.version == f.version)
    a = product_attributes.c
    for group in f.attribute_groups():
        out.append(exists().where(a.product_id == c.product_id, a.attribute_key.in_(group)))
    return out


def _tsquery(term: Term) -> ColumnElement[object]:
    """Words are [a-z0-9]+ only, so joined they are a valid tsquery: any of a term's words
    matches it, but an excluding term ("high heel": -1) needs all of them."""
    return func.to_tsquery(ENGLISH, literal((" & " if term.excludes else " | ").join(term.words)))


def text_query(
    terms: Sequence[Term], limit: int, filters: Filters | None, offset: int
) -> Select[Any]:
    """product_id, score, then one rank column per term."""
    vector = products.c.search_vector
    matches = [vector.bool_op("@@")(_tsquery(t)) for t in terms]
    ranks = [func.ts_rank(vector, _tsquery(t)) for t in terms]
    score = sum((literal(t.weight) * r for t, r in zip(terms, ranks, strict=True)), literal(0.0))
    wanted = or_(*[m for t, m in zip(terms, matches, strict=True) if t.weight > 0])
    refused = [~m for t, m in zip(terms, matches, strict=True) if t.excludes]
    return (
        sql_select(products.c.product_id, score.label("score"), *ranks)
        .where(and_(wanted, *refused, *filter_clauses(filters)))
        .order_by(score.desc(), products.c.product_id)
        .limit(limit)
        .offset(offset)
    )


def excluded_query(product_ids: Sequence[str], terms: Sequence[Term]) -> Select[Any] | None:
    """Those of ``product_ids`` whose words match an excluding term (None: no term excludes)."""
    refused = [products.c.search_vector.bool_op("@@")(_tsquery(t)) for t in terms if t.excludes]
    if not refused:
        return None
    return sql_select(products.c.product_id).where(
        products.c.product_id.in_(list(product_ids)), or_(*refused)
    )
