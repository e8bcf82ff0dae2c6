"""The tolerant parse (SPEC R1): a field that does not fit is synced as absent and reported.

A body is validated against its model once; that is all a clean body costs (and a body in the
plain forms real stores send is validated without Python calls, ``schemas.native``). When validation
fails, each error is traced through the body to the value that caused it, that value is taken out
of a copy of the body (a key deleted, so the field's default applies; a list element removed) and
recorded as a :class:`~schemas.problems.FieldProblem`, and the copy is validated again, until it
fits. A required field that is missing inside a nested object takes that object out (a variant
without an id is dropped; the product syncs). Only the body's identity (``model.identity``) may
fail the whole record, with :class:`~schemas.problems.IdentityError`.

Problems name the path in the body as Shopify sent it (``line_items[3].price``, original list
indexes, not the shifted ones of the copy) and a reason built from the error's type and a message
that is known not to carry the value. The same body always yields the same problems in the same
order: pydantic reports errors in schema order, and removal is done pass by pass in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from schemas.native import validate_clean
from schemas.problems import FieldProblem, IdentityError
from schemas.shopify import ShopifyModel
from schemas.types import UNFIT_TYPES

M = TypeVar("M", bound=ShopifyModel)

MAX_PASSES = 16
"""Validation passes before giving up. Each pass removes every value that failed in it, and a
removal cascades at most one level per pass (a required field gone takes its object), so real
bodies need two or three; the bound keeps a pathological body from costing more."""

SAFE_MESSAGE_TYPES = frozenset(
    {
        "missing", "model_type", "model_attributes_type", "dict_type", "list_type",
        "bool_type", "bool_parsing", "int_type", "int_parsing", "int_parsing_size", "int_from_float",
        "float_type", "float_parsing", "finite_number", "string_type", "string_unicode",
        "decimal_type", "decimal_parsing", "decimal_max_digits", "decimal_max_places",
        "decimal_whole_digits", "datetime_type", "datetime_parsing", "datetime_from_date_parsing",
        "date_parsing", "enum", "literal_error", "recursion_loop",
    }
)  # fmt: skip
"""Pydantic error types whose message is fixed text or names only the schema (class names,
expected values) or a fixed parser complaint: safe to copy into a reason. Any other type is
reported by its name alone, since its message may quote the input (``union_tag_invalid``) or a
foreign exception's text (``value_error``)."""

Path = tuple[str | int, ...]


class Parsed(NamedTuple):
    """A body's record and the field problems met on the way (empty for a clean body)."""

    record: ShopifyModel
    problems: tuple[FieldProblem, ...]


def reason_of(error: ErrorDetails) -> str:
    """Why a value did not fit: the error's type and, when it cannot hold the value, its message."""
    kind = error["type"]
    if kind in SAFE_MESSAGE_TYPES or kind in UNFIT_TYPES:
        return f"{kind}: {error['msg']}"
    return kind


def format_path(path: Sequence[str | int]) -> str:
    """``('line_items', 0, 'price')`` as ``line_items[0].price``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


class _Body:
    """A copy-on-write view of the body: containers on a removed path are copied, never the
    original's, and each copied list remembers the original index of every element it kept."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.root: dict[str, Any] = body
        self._owned: set[int] = set()
        self._indexes: dict[int, list[int]] = {}

    def walk(self, loc: Sequence[str | int]) -> tuple[Path, Path]:
        """The longest prefix of ``loc`` that exists in the data: as a path in this copy and as a
        path in the original body. Parts that are not data (pydantic's union-member tags such as
        ``'int'`` or ``'str-enum[X]'``, or a key that is missing) end the walk."""
        here: Any = self.root
        work: list[str | int] = []
        original: list[str | int] = []
        for part in loc:
            if isinstance(here, dict) and isinstance(part, str) and part in here:
                here = here[part]
                work.append(part)
                original.append(part)
            elif isinstance(here, list) and isinstance(part, int) and 0 <= part < len(here):
                indexes = self._indexes.get(id(here))
                original.append(indexes[part] if indexes is not None else part)
                here = here[part]
                work.append(part)
            else:
                break
        return tuple(work), tuple(original)

    def _own(self, container: Any) -> Any:
        if id(container) in self._owned:
            return container
        if isinstance(container, dict):
            copy: Any = dict(container)
        else:
            copy = list(container)
            old = self._indexes.get(id(container))
            self._indexes[id(copy)] = list(old) if old is not None else list(range(len(container)))
        self._owned.add(id(copy))
        return copy

    def remove(self, path: Path) -> None:
        """Take the value at ``path`` (a path in this copy, not the root) out of its container."""
        self.root = self._own(self.root)
        parent: Any = self.root
        for part in path[:-1]:
            child = self._own(parent[part])
            parent[part] = child
            parent = child
        last = path[-1]
        del parent[last]
        if isinstance(parent, list):
            assert isinstance(last, int)
            del self._indexes[id(parent)][last]


def _identity_error(
    model: type[ShopifyModel], label: str, problems: list[FieldProblem], detail: str
) -> IdentityError:
    names = " or ".join(model.identity) or "the body"
    on_identity = [p for p in problems if p.path.split(".")[0].split("[")[0] in model.identity]
    found = "; ".join(f"{p.path}: {p.reason}" for p in on_identity) or detail
    return IdentityError(f"{label}: identity unreadable ({names}): {found}", tuple(problems))


def parse_tolerant(model: type[M], body: dict[str, Any], label: str = "") -> Parsed:
    """Validate ``body`` as ``model``, syncing what does not fit as absent (see the module doc).

    ``label`` (the Shopify topic) prefixes an :class:`IdentityError`'s message, raised when no
    field of ``model.identity`` is readable. The body itself is never modified.
    """
    label = label or model.__name__
    clean = validate_clean(model, body)  # the usual body, in pydantic-core alone (schemas.native)
    if clean is not None:
        _check_identity(model, clean, label, [])
        return Parsed(clean, ())
    try:
        record = model.model_validate(body)
    except ValidationError as exc:
        error = exc
    else:
        _check_identity(model, record, label, [])
        return Parsed(record, ())
    work = _Body(body)
    problems: list[FieldProblem] = []
    for _ in range(MAX_PASSES):
        targets: dict[Path, None] = {}  # in error order, without repeats
        for detail in error.errors(include_url=False, include_context=False, include_input=False):
            loc = detail["loc"]
            path, original = work.walk(loc)
            if path in targets:
                continue  # another member of a union failing on the same value: one problem
            missing = detail["type"] == "missing"
            shown = (*original, loc[len(path)]) if missing and len(loc) > len(path) else original
            reason = reason_of(detail)
            if missing and path:
                reason = f"{reason}: a required field is absent or did not fit, so its object is dropped"
            problem = FieldProblem(path=format_path(shown), reason=reason)
            problems.append(problem)
            if not path:  # the body itself: a required top-level field is missing
                raise _identity_error(model, label, problems, problem.reason)
            if len(path) == 1 and model.identity == path:  # the one identity field is unreadable
                raise _identity_error(model, label, problems, problem.reason)
            targets[path] = None
        # Remove deepest-last-first so list indexes still to be removed do not shift, and skip a
        # value whose container goes anyway.
        chosen = [p for p in targets if not any(p[: len(q)] == q and p != q for q in targets)]
        for path in sorted(chosen, key=_removal_order, reverse=True):
            work.remove(path)
        try:
            record = model.model_validate(work.root)
        except ValidationError as exc:
            error = exc
            continue
        _check_identity(model, record, label, problems)
        return Parsed(record, tuple(problems))
    raise _identity_error(model, label, problems, f"still does not fit after {MAX_PASSES} passes")


def _removal_order(path: Path) -> tuple[tuple[int, int | str], ...]:
    # Paths mix keys and indexes; within one container they are all of one kind, so comparing
    # (kind, part) pairs orders siblings by index and never compares a str with an int.
    return tuple((0, p) if isinstance(p, int) else (1, p) for p in path)


def _check_identity(
    model: type[ShopifyModel], record: ShopifyModel, label: str, problems: list[FieldProblem]
) -> None:
    if model.identity and all(getattr(record, name, None) is None for name in model.identity):
        raise _identity_error(model, label, problems, "absent")
