"""A per-call log of what a benchmark's HubSpot sandbox was asked, kept by the benchmark itself.

The sandbox counts requests (``hubspot_sandbox.stats``) but not when each was answered or what it
carried, and associations have no creation time in its file. A figure that times associations, or
counts inputs per call, wraps the sandbox's app in :func:`CallLog.middleware` (``bench.stack.
bench_sandbox(call_log=...)``): for every HubSpot API request it notes when the answer was ready,
the route, the status, how many ``inputs`` the body carried, and for an association
``batch/create`` the (from, to) id pairs its answer says were linked. The sandbox itself is not
changed; the cost is one ``orjson.loads`` of each POST body (and of association answers).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

API_PREFIXES = ("/crm/", "/account-info/")
ASSOCIATION_CREATE = "/crm/v4/associations/{from_type}/{to_type}/batch/create"


@dataclass(frozen=True)
class Call:
    """One answered HubSpot API request: ``at_ms`` is when its answer was ready (epoch ms)."""

    at_ms: int
    method: str
    route: str  # the route template, e.g. /crm/v3/objects/{object_type}/batch/upsert
    path: str
    status: int
    inputs: int = 0  # len(body["inputs"]) of a batch call; 0 otherwise
    linked: tuple[tuple[int, int], ...] = ()  # association batch/create: (from id, to id) answered linked

    @property
    def is_lookup(self) -> bool:
        """A ``batch/read``: finding ids, not writing anything."""
        return self.route.endswith("/batch/read")

    @property
    def is_data(self) -> bool:
        """A batch that writes: object create/update/upsert/archive, association create/archive."""
        return "/batch/" in self.route and not self.is_lookup

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def inputs_in(body: bytes) -> int:
    """How many ``inputs`` a batch body carries (0 for any other body, or one that is not JSON)."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return 0
    items = parsed.get("inputs") if isinstance(parsed, dict) else None
    return len(items) if isinstance(items, list) else 0


def linked_pairs(answer: bytes) -> tuple[tuple[int, int], ...]:
    """The (from, to) ids an association ``batch/create`` answer (201 or 207) lists as linked."""
    try:
        parsed = orjson.loads(answer) if answer else None
    except orjson.JSONDecodeError:
        return ()
    results = parsed.get("results") if isinstance(parsed, dict) else None
    if not isinstance(results, list):
        return ()
    pairs = []
    for item in results:
        if isinstance(item, dict) and "fromObjectId" in item and "toObjectId" in item:
            pairs.append((int(item["fromObjectId"]), int(item["toObjectId"])))
    return tuple(pairs)


@dataclass
class CallLog:
    """The calls, in the order they were answered."""

    calls: list[Call] = field(default_factory=list)

    def middleware(self) -> Middleware:
        """An aiohttp middleware to put first (outermost): it sees 429s and errors too."""

        @web.middleware
        async def log_call(request: web.Request, handler: Handler) -> web.StreamResponse:
            if not request.path.startswith(API_PREFIXES):
                return await handler(request)
            body = await request.read() if request.method == "POST" and request.can_read_body else b""
            response = await handler(request)  # aiohttp keeps the body read, so the route reads it too
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "(unmatched)"
            linked: tuple[tuple[int, int], ...] = ()
            if route == ASSOCIATION_CREATE and isinstance(response, web.Response) and response.status < 300:
                linked = linked_pairs(response.body if isinstance(response.body, bytes) else b"")
            self.calls.append(
                Call(int(time.time() * 1000), request.method, route, request.path, response.status,
                     inputs_in(body), linked)
            )  # fmt: skip
            return response

        return log_call

    def since(self, at_ms: float) -> list[Call]:
        return [c for c in self.calls if c.at_ms >= at_ms]


@dataclass(frozen=True)
class CallSummary:
    """What a run's calls add up to: all of them, the writing ones, the lookups by path, 429s."""

    calls: int
    data_calls: int  # answered 2xx
    data_inputs: int  # inputs of those calls
    lookups_by_path: dict[str, int]
    rate_limited: int
    other: int  # set-up, lists, searches: neither a data call nor a lookup

    @property
    def lookups(self) -> int:
        return sum(self.lookups_by_path.values())

    @property
    def inputs_per_data_call(self) -> float:
        return self.data_inputs / self.data_calls if self.data_calls else 0.0

    def describe(self) -> str:
        by_path = ", ".join(f"{path} {n}" for path, n in sorted(self.lookups_by_path.items()))
        return (
            f"{self.calls:,} calls: {self.data_calls:,} data calls carrying {self.data_inputs:,} inputs "
            f"({self.inputs_per_data_call:.1f} a call), {self.lookups:,} batch/read lookups "
            f"({by_path or 'none'}), {self.other:,} other; "
            f"{self.rate_limited} answered 429"
        )


def summarize(calls: Iterable[Call]) -> CallSummary:
    counted = list(calls)
    data = [c for c in counted if c.is_data and c.ok]
    lookups: Counter[str] = Counter(c.path for c in counted if c.is_lookup)
    limited = sum(1 for c in counted if c.status == 429)
    other = sum(1 for c in counted if not c.is_data and not c.is_lookup)
    return CallSummary(
        calls=len(counted), data_calls=len(data), data_inputs=sum(c.inputs for c in data),
        lookups_by_path=dict(lookups), rate_limited=limited, other=other,
    )  # fmt: skip


def first_linked_ms(calls: Iterable[Call]) -> dict[frozenset[int], int]:
    """Each linked pair of ids (either direction) and when a call first answered it linked."""
    first: dict[frozenset[int], int] = {}
    for call in calls:
        for a, b in call.linked:
            first.setdefault(frozenset((a, b)), call.at_ms)
    return first
