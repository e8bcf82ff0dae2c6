"""Readable differences between two folded accounts, for test failures and operators' eyes.

The account model itself (``Account``, ``fold``) is product code (replay folds with it) and lives
in ``handlers.account_fold``; only this comparison is a development aid.
"""

from __future__ import annotations

from handlers.account_fold import Account


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
