"""Parsing a webhook body so that what is stored is what Shopify sent (SPEC R1).

Two things go wrong with a plain ``orjson.loads`` on real deliveries:

* **Integers beyond 64 bits.** orjson reads an integer outside ``[-2**63, 2**64)`` as a float, so
  ``18446744073709551616`` would be stored as ``1.8446744073709552e19`` and an id would silently
  change. Here such an integer becomes its exact digit string (integers within 64 bits stay ints,
  exact, 2**53 + 1 included): the schemas then report it as a field problem, or dead-letter the
  delivery when the integer is its identity. The slow path (the standard library's parser with a
  ``parse_int`` hook, about 3x slower) runs only when the raw bytes hold a run of 20 digits (or
  ``-`` and 19), which every out-of-range integer needs; that check is one ``bytes.translate``
  (about 1.5 us per KB, a tenth of a regex).
* **Deep nesting.** orjson refuses to *write* more than 254 levels ("Recursion limit reached"), and
  refuses to read more than 1024; pydantic's JSON parser (which the worker decodes envelopes with)
  stops at about 200. So a body is kept to :data:`MAX_BODY_DEPTH` levels: a container nested deeper
  is replaced by ``null`` (absent, as R1 wants for a field that does not fit) and its path is
  reported as a :class:`~schemas.problems.FieldProblem`. Shopify's own records are less than ten
  levels deep; 64 leaves room for anything merchants put in notes and properties.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.problems import FieldProblem

MAX_BODY_DEPTH = 64
"""Deepest container nesting a stored body keeps (the body object itself is level 1)."""

_I64_MIN, _U64_END = -(2**63), 2**64
_CONTAINERS = (dict, list)
_DIGITS_AS_ZERO = bytes(48 if 48 <= i <= 57 else 45 if i == 45 else 32 for i in range(256))
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\],:]')


@dataclass(frozen=True)
class LoadedBody:
    """A parsed body and the problems met while keeping it storable (paths only, never values)."""

    value: Any
    problems: list[FieldProblem] = field(default_factory=list)


def load_body(raw: bytes) -> LoadedBody:
    """Parse JSON bytes exactly (``ValueError`` when they are not JSON)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" not in str(exc) and "infinity" not in str(exc):
            raise
        # Too deep for orjson, or a number beyond a double (a 400-digit id): cut and parse exactly.
        return _exact(*cut_deep(raw, MAX_BODY_DEPTH))
    if _deeper_than(value, MAX_BODY_DEPTH):
        return _exact(*cut_deep(raw, MAX_BODY_DEPTH))
    if _may_hold_big_int(raw):
        return _exact(raw, [])
    return LoadedBody(value)


def _exact(raw: bytes, cut: list[str]) -> LoadedBody:
    """The standard library's parser with hooks that keep every number exact (slow path)."""
    try:
        value = json.loads(
            raw.decode("utf-8"), parse_int=_exact_int, parse_float=_exact_float, parse_constant=_not_json
        )
    except RecursionError as exc:  # only malformed text can get here deeper than the cut
        raise ValueError("not JSON: nested too deep") from exc
    reason = f"nested deeper than {MAX_BODY_DEPTH} levels: stored as null"
    return LoadedBody(value, [FieldProblem(path=path, reason=reason) for path in cut])


def _exact_int(literal: str) -> int | str:
    """An integer literal as an int when it fits 64 bits, else as its exact digits."""
    if len(literal) > 21:  # beyond 64 bits for sure (and int() refuses 4,300+ digits)
        return literal
    number = int(literal)
    return number if _I64_MIN <= number < _U64_END else literal


def _exact_float(literal: str) -> float | str:
    """A number with a fraction or exponent as a float, or as its text beyond a double's range."""
    number = float(literal)
    return literal if math.isinf(number) else number


def _not_json(literal: str) -> None:
    raise ValueError(f"{literal} is not JSON")


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether a parsed value nests containers more than ``limit`` levels. It stops at the limit,
    so the recursion is bounded whatever the input (exact types: orjson makes no subclasses)."""
    if limit <= 0:
        return type(value) in _CONTAINERS
    for item in value.values() if type(value) is dict else value:
        if type(item) in _CONTAINERS and _deeper_than(item, limit - 1):
            return True
    return False


def _may_hold_big_int(raw: bytes) -> bool:
    """Whether the text holds 20 digits in a row (or ``-`` and 19): every integer orjson would
    turn into a float does. Digits inside strings count too (a harmless trip to the slow path)."""
    digits = raw.translate(_DIGITS_AS_ZERO)
    return b"0" * 20 in digits or b"-" + b"0" * 19 in digits


def cut_deep(raw: bytes, limit: int) -> tuple[bytes, list[str]]:
    """Replace every container nested deeper than ``limit`` with ``null``; return the new bytes and
    the cut paths (``a.b[3].c``). Works on the text, so a body too deep for any parser is cut too.
    Malformed input either comes back for the parser to reject or raises ``ValueError``."""
    out: list[bytes] = []
    cuts: list[str] = []
    # One frame per open container up to the limit: [is_object, key or index, expecting a key].
    frames: list[list[Any]] = []
    depth = 0
    copied = 0
    cut_start = -1
    for match in _TOKEN.finditer(raw):
        token = match.group()
        char = token[:1]
        if cut_start >= 0:  # inside a cut subtree: only count brackets
            if char in (b"{", b"["):
                depth += 1
            elif char in (b"}", b"]"):
                depth -= 1
                if depth == limit:
                    out += [raw[copied:cut_start], b"null"]
                    copied, cut_start = match.end(), -1
            continue
        if char in (b"{", b"["):
            if depth == limit:
                cuts.append(_path(frames))
                cut_start = match.start()
                depth += 1
                continue
            depth += 1
            frames.append([char == b"{", None if char == b"{" else 0, char == b"{"])
        elif char in (b"}", b"]"):
            if not frames:
                return raw, []
            frames.pop()
            depth -= 1
        elif char == b",":
            if frames:
                frame = frames[-1]
                if frame[0]:
                    frame[2] = True
                else:
                    frame[1] += 1
        elif char == b":":
            if frames:
                frames[-1][2] = False
        elif frames and frames[-1][0] and frames[-1][2]:  # a string where a key belongs
            try:
                frames[-1][1] = json.loads(token)
            except ValueError:
                frames[-1][1] = "?"
    if cut_start >= 0:
        raise ValueError("not JSON: a container deeper than the limit is never closed")
    out.append(raw[copied:])
    return b"".join(out), cuts


def _path(frames: list[list[Any]]) -> str:
    """Where the container being opened sits: each open container's current key or index."""
    steps = [f".{where}" if is_object else f"[{where}]" for is_object, where, _ in frames]
    return "".join(steps).removeprefix(".")
