"""One way to say what failed validation, for dead letters, the producer's refusals and the
API's 422s alike: ``field.path: reason; ...`` (at most ten, so a hostile payload cannot make
the message unbounded)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

MAX_PROBLEMS = 10


def describe(
    errors: Sequence[Mapping[str, Any]], root: str = "<event>", skip: Collection[str] = ()
) -> str:
    """``errors``: pydantic's (``ValidationError.errors()``, FastAPI's request errors);
    ``skip``: location parts to leave out (the API's ``body``); ``root``: the name of a
    problem with the whole object."""
    problems = []
    for err in errors[:MAX_PROBLEMS]:
        where = ".".join(str(p) for p in err["loc"] if p not in skip) or root
        problems.append(f"{where}: {err['msg']}")
    return "; ".join(problems)
