"""Pacing the small GraphQL queries the bulk import still sends (start an operation, poll it) by
Shopify's calculated query cost, so they are not throttled in the first place.

Shopify's GraphQL Admin API limits an app on a store with a leaky bucket of points: a query runs
only when the bucket holds its *requested* cost, is charged its *actual* cost (the rest is
refunded), and the bucket refills at ``restoreRate`` points a second up to ``maximumAvailable``
(100 points/s on the standard plan, 200 Advanced, 1,000 Plus, 2,000 Commerce Components). Every
answer says where the bucket stood in ``extensions.cost.throttleStatus``; a query sent with too
little in the bucket is answered ``THROTTLED``. Source: shopify.dev, "GraphQL Admin API rate
limits" (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits).

So the wait before the next query is a pure function of the last answer's cost extension, the
time since that answer, and what the next query will request (the same document requested the
same cost last time): how long until the bucket, refilling at its rate, holds that much. The bucket
belongs to the app and the store, not to this process, so another client of the same app can
have spent some since: the estimate can be short, and a THROTTLED answer is still waited out
(the same function, with no time passed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_RESTORE_RATE = 50.0
"""Assumed when an answer says no restore rate (half the standard plan's: waiting too long is
cheaper than being throttled again)."""
MARGIN_POINTS = 1.0
"""Asked beyond the cost before a query is sent: Shopify reports the bucket rounded (to a tenth
in the sandbox), and a query short of its cost by a fraction of a point is THROTTLED whole."""
SMALLEST_WAIT_S = 0.1
"""Never retry a THROTTLED query sooner (an answer whose numbers promise the bucket is full)."""


@dataclass(frozen=True)
class Bucket:
    """Where the bucket stood when an answer was made: ``available`` of ``maximum`` points,
    refilling at ``restore_rate`` points a second."""

    available: float
    maximum: float
    restore_rate: float

    @classmethod
    def from_answer(cls, body: dict[str, Any]) -> Bucket | None:
        """The bucket an answer's ``extensions.cost.throttleStatus`` describes; None if it says none."""
        cost = (body.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") if isinstance(cost, dict) else None
        if not isinstance(status, dict):
            return None
        try:
            available = float(status["currentlyAvailable"])
            maximum = float(status.get("maximumAvailable") or available)
            rate = float(status.get("restoreRate") or DEFAULT_RESTORE_RATE)
        except (KeyError, TypeError, ValueError):
            return None
        return cls(max(0.0, available), max(maximum, 0.0), rate if rate > 0 else DEFAULT_RESTORE_RATE)


def requested_cost(body: dict[str, Any]) -> float | None:
    """What the answered query asked of the bucket (``requestedQueryCost``), if said."""
    cost = (body.get("extensions") or {}).get("cost") or {}
    try:
        return float(cost["requestedQueryCost"]) if isinstance(cost, dict) else None
    except (KeyError, TypeError, ValueError):
        return None


def available_after(bucket: Bucket, elapsed_s: float) -> float:
    """Points in the bucket ``elapsed_s`` after the answer, refilled at its rate up to its maximum."""
    return min(bucket.maximum, bucket.available + bucket.restore_rate * max(0.0, elapsed_s))


def wait_before(bucket: Bucket | None, elapsed_s: float, next_cost: float | None) -> float:
    """Seconds to wait, ``elapsed_s`` after the last answer, before sending a query that will
    request ``next_cost`` points: none when the bucket will hold them (or nothing is known), else
    until it refills to them. A cost above the bucket's maximum is paced as the maximum (Shopify
    refuses it as MAX_COST_EXCEEDED, not THROTTLED: waiting longer would not help)."""
    if bucket is None or next_cost is None:
        return 0.0
    wanted = min(next_cost + MARGIN_POINTS, bucket.maximum)
    missing = wanted - available_after(bucket, elapsed_s)
    return max(0.0, missing / bucket.restore_rate)


def throttled_wait(body: dict[str, Any]) -> float:
    """Seconds to wait after a THROTTLED answer before sending the same query again: until the
    bucket holds the cost the query requested, and never less than SMALLEST_WAIT_S."""
    bucket = Bucket.from_answer(body) or Bucket(0.0, 1000.0, DEFAULT_RESTORE_RATE)
    cost = requested_cost(body)
    return max(SMALLEST_WAIT_S, wait_before(bucket, 0.0, cost if cost is not None else 10.0))
