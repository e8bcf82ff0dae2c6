"""Readable differences between two folded accounts, for test failures and operators' eyes.

The account model itself (``Account``, ``fold``) is product code (replay folds with it) and lives
in ``handlers.account_fold``; only this comparison is a development aid.
"""

from __future__ import annotations

from typing import Any

from handlers.account_fold import Account
from streams.rules.keys import UNIQUE_PROPERTY


def differences(expected: Account, actual: Account, limit: int = 10) -> list[str]:
    """Readable differences between two accounts (for test failures and operators)."""
    out = []
    for key in sorted(set(expected.records) | set(actual.records)):
        want, have = expected.records.get(key), actual.records.get(key)
        if want != have:
            if want is None or have is None:
                out.append(f"{key}: {'missing' if have is None else 'unexpected'}")
            else:
                changed = {
                    p: (want.get(p), have.get(p)) for p in set(want) | set(have) if want.get(p) != have.get(p)
                }
                out.append(f"{key}: {changed}")
    for link in sorted(expected.associations ^ actual.associations):
        out.append(f"association {link}: {'missing' if link in expected.associations else 'unexpected'}")
    if expected.archived != actual.archived:
        out.append(f"archived: missing {sorted(expected.archived - actual.archived)[:3]}, "
                   f"unexpected {sorted(actual.archived - expected.archived)[:3]}")  # fmt: skip
    return out[:limit]


def from_dump(dump: dict[str, Any]) -> Account:
    """The sandbox's account in the shape of ``handlers.account_fold.Account`` (natural keys, labels)."""
    account = Account()
    by_id: dict[str, tuple[str, str]] = {}
    for object_type, unique in UNIQUE_PROPERTY.items():
        for record in dump[object_type]:
            props = {k: v for k, v in record["properties"].items() if v not in (None, "")}
            if object_type == "deals":
                props["dealstage"] = record.get("stage_label")
                props["pipeline"] = record.get("pipeline_label")
            key = (object_type, str(props[unique]))
            account.records[key] = props
            by_id[str(record["id"])] = key
    for link in dump["associations"]:
        a, b = by_id.get(str(link["from_id"])), by_id.get(str(link["to_id"]))
        if a and b:
            account.associations.add((a, b, int(link["type_id"])))
    return account
