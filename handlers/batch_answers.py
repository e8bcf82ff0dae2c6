"""Reading HubSpot's batch answers input by input (pure, no I/O).

A batch call answers 200/201 (every input applied), 204 (archives), or 207 Multi-Status: some
inputs failed on their own and ``errors[]`` says why, each error naming its inputs in
``context`` (``{"ids": [...]}``, or ``fromObjectId``/``toObjectId`` ...) when HubSpot says which.
Every field of an answer is optional, so nothing here trusts one to be present: an error that
names no input leaves the unconfirmed inputs *unknown*, and the writer asks again one input at a
time, since the error of a one-input call can only be that input's.

What an input's error means for the writer:

- ``TRANSIENT``: HubSpot may accept it later (an internal error, a rate limit, a lock, or an
  error that says nothing): retried, never dead-lettered.
- ``MISSING``: a record it names does not exist (``OBJECT_NOT_FOUND``): for an update-only write
  that is HubSpot's deletion (C4); for an association, an end that may still appear.
- ``REJECTED``: anything else HubSpot names (``VALIDATION_ERROR``, ``CONFLICT``, ...): final,
  dead-lettered with HubSpot's message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

TRANSIENT_CATEGORIES = frozenset(
    {
        "RATE_LIMITS",
        "INTERNAL_ERROR",
        "SERVICE_UNAVAILABLE",
        "BAD_GATEWAY",
        "GATEWAY_TIMEOUT",
        "TIMEOUT",
        "LOCKED",
        "TEMPORARILY_UNAVAILABLE",
        "CONCURRENT_MODIFICATION",
    }
)
MISSING_CATEGORY = "OBJECT_NOT_FOUND"


class Verdict(Enum):
    TRANSIENT = "transient"
    MISSING = "missing"
    REJECTED = "rejected"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class BatchError:
    """One entry of ``errors[]`` (or a whole-call error body), with the ids it names."""

    category: str | None
    message: str | None
    any_ids: frozenset[str]
    from_ids: frozenset[str]
    to_ids: frozenset[str]
    raw: dict[str, Any]

    @property
    def names_inputs(self) -> bool:
        return bool(self.any_ids or self.from_ids or self.to_ids)

    @property
    def verdict(self) -> Verdict:
        if self.category == MISSING_CATEGORY:
            return Verdict.MISSING
        if self.category is None or self.category in TRANSIENT_CATEGORIES:
            return Verdict.TRANSIENT
        return Verdict.REJECTED

    def letter_body(self, status: int | None = None) -> dict[str, Any]:
        """What a dead letter quotes: HubSpot's category, message and the error itself."""
        return {"category": self.category, "message": self.message, "errors": [self.raw], "status": status}


def _texts(value: Any, norm: Callable[[str], str]) -> set[str]:
    values = value if isinstance(value, list) else [value]
    return {norm(str(v)) for v in values if isinstance(v, str | int) and not isinstance(v, bool)}


def _parse(item: Any, norm: Callable[[str], str]) -> BatchError:
    if not isinstance(item, dict):
        item = {"message": str(item)}
    any_ids: set[str] = set()
    from_ids: set[str] = set()
    to_ids: set[str] = set()
    context = item.get("context")
    if isinstance(context, dict):
        for key, value in context.items():
            name = str(key).lower()
            if name.startswith("from"):
                from_ids |= _texts(value, norm)
            elif name.startswith("to"):
                to_ids |= _texts(value, norm)
            elif "id" in name:
                any_ids |= _texts(value, norm)
    if item.get("id") is not None:
        any_ids |= _texts(item.get("id"), norm)
    category = item.get("category")
    message = item.get("message")
    return BatchError(
        category=category if isinstance(category, str) and category else None,
        message=message if isinstance(message, str) else None,
        any_ids=frozenset(any_ids),
        from_ids=frozenset(from_ids),
        to_ids=frozenset(to_ids),
        raw=item,
    )


def batch_errors(status: int, body: dict[str, Any], norm: Callable[[str], str] = str) -> list[BatchError]:
    """The errors of an answer: ``errors[]``, or the body itself when the whole call failed."""
    raw = body.get("errors")
    if status >= 400:
        return [_parse(body, norm)]
    if not isinstance(raw, list):
        return []
    return [_parse(item, norm) for item in raw]


def matching(
    errors: Iterable[BatchError],
    *,
    ids: Iterable[str] = (),
    from_id: str | None = None,
    to_id: str | None = None,
) -> list[BatchError]:
    """The errors that name this input (by its id, or by either end of an association)."""
    wanted = set(ids)
    wanted_from = {from_id} if from_id is not None else set()
    wanted_to = {to_id} if to_id is not None else set()
    return [
        e
        for e in errors
        if wanted & e.any_ids or wanted_from & (e.from_ids | e.any_ids) or wanted_to & (e.to_ids | e.any_ids)
    ]


_SEVERITY = [Verdict.REJECTED, Verdict.MISSING, Verdict.TRANSIENT]


def judge(
    named: list[BatchError], errors: list[BatchError], *, single: bool
) -> tuple[Verdict, BatchError | None]:
    """What an input HubSpot did not confirm failed of, given the errors that name it.

    Errors naming nobody belong to a one-input call's only input; in a larger call they leave
    it unknown. Several errors of different kinds for one input are unknown too in a larger call
    (an id may be shared by several inputs); for a lone input the gravest wins.
    """
    if not named and single:
        named = [e for e in errors if not e.names_inputs] or errors
    if not named:
        return Verdict.UNKNOWN, None
    kinds = {e.verdict for e in named}
    if len(kinds) > 1 and not single:
        return Verdict.UNKNOWN, named[0]
    for kind in _SEVERITY:
        for error in named:
            if error.verdict is kind:
                return kind, error
    return Verdict.UNKNOWN, named[0]  # unreachable: every error has a verdict


def anonymous(errors: Iterable[BatchError]) -> bool:
    """Whether some error names no input (so an input no error names is not proven applied)."""
    return any(not e.names_inputs for e in errors)
