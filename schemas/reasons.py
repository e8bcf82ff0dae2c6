"""Reasons without values: what a dead letter's reason says *why*, with what it says *what* dropped.

A dead letter's reason holds per-record details (pydantic's ``input_value=...`` fragments, emails,
ids), which would make every count 1 and would put personal data in logs and on an operator's
terminal. :func:`reason_kind` keeps the prefix, each failing field's path and pydantic's message
template. The worker and the writer log it; the loss report (``handlers.loss``) counts by it. It
lives at the bottom layer because every layer above logs reasons.
"""

from __future__ import annotations

import re

_PYDANTIC_HEADER = re.compile(r"(?P<count>\d+) validation errors? for (?P<model>.+)$")
_PYDANTIC_MESSAGE = re.compile(r"^  (?P<msg>.*?) \[type=(?P<type>[\w.-]+)")
_VALUE_CARRYING_TYPES = {"value_error", "assertion_error"}
"""Pydantic error types whose message embeds the validator's text, which may quote the input."""
_ASSOCIATION_END = re.compile(r"association end (?P<type>[\w-]+):\S+")
_EMAIL = re.compile(r"[^\s'\"<>()\[\]{},;:]+@[^\s'\"<>()\[\]{},;:]+")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_SHOPIFY_TOPIC = re.compile(r"^['\"][a-z_]+/[a-z_]+['\"]$")
"""A quoted webhook topic (``'orders/edited'``) says why, not what: kept."""
_LONG_NUMBER = re.compile(r"\d{5,}")
_INDEX = re.compile(r"\.(\d+)(?=\.|$)|\[\d+\]")
MAX_REASON = 200


def fold_path(loc: str) -> str:
    """A field path with its list indices folded (``line_items.3.price`` -> ``line_items[*].price``),
    so one broken field counts once however many lines carry it."""
    return _INDEX.sub("[*]", loc)


def scrub(text: str) -> str:
    """The last line of defence for free text: no emails, quoted strings or long numbers."""
    text = _EMAIL.sub("<email>", text)
    text = _QUOTED.sub(lambda m: m[0] if _SHOPIFY_TOPIC.match(m[0]) else "'…'", text)
    text = _LONG_NUMBER.sub("…", text)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _pydantic_errors(lines: list[str]) -> list[str]:
    """``path: message`` for each error of a pydantic ``ValidationError`` text, values dropped."""
    out: list[str] = []
    loc = ""
    for line in lines:
        found = _PYDANTIC_MESSAGE.match(line)
        if found:
            kind, msg = found["type"], found["msg"]
            if kind in _VALUE_CARRYING_TYPES or "{" in msg:
                msg = msg.split(",", 1)[0]  # "Value error, <the validator's text>" -> "Value error"
            item = f"{fold_path(loc)}: {msg}" if loc else msg
            if item not in out:
                out.append(item)
            loc = ""
        elif line and not line.startswith(" "):
            loc = line.strip()
    return out


def reason_kind(reason: str) -> str:
    """The reason without per-record details: what is counted, printed and logged.

    A pydantic validation text becomes ``<prefix>: <path>: <message>; ...`` (paths with indices
    folded, at most three fields, then ``(+N more)``); any other reason is its first line with
    emails, quoted strings and long numbers blanked."""
    lines = reason.splitlines() or [""]
    first = lines[0]
    header = _PYDANTIC_HEADER.search(first)
    if header is not None:
        prefix = first[: header.start()].rstrip(": ").strip() or f"does not fit {header['model'].strip()}"
        errors = _pydantic_errors(lines[1:])
        shown = "; ".join(_scrub_email(e) for e in errors[:3])
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        text = f"{scrub(prefix)}: {shown}{more}" if shown else scrub(prefix)
        return text if len(text) <= 2 * MAX_REASON else text[: 2 * MAX_REASON - 1] + "…"
    first = _ASSOCIATION_END.sub(r"association end \g<type>", first)
    return scrub(first.strip())


def _scrub_email(text: str) -> str:
    return _EMAIL.sub("<email>", text)
