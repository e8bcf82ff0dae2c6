"""The bridge's Prometheus metrics: requests by route and status, their latency, appends by topic.

An aiohttp middleware counts every request by its route (the path as routed, never a query) and
status; a signed Shopify delivery that was stored also counts under its Shopify topic (only then:
an unsigned request's headers could make up any number of label values). Listed in the README.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Histogram

from streams.metrics import LATENCY_BUCKETS

REQUESTS = Counter(
    "shopsync_bridge_requests", "Requests the bridge answered, by route and status.", ["route", "status"]
)
REQUEST_SECONDS = Histogram(
    "shopsync_bridge_request_seconds", "Time to answer a request (appends awaited), by route.", ["route"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
STORED = Counter(
    "shopsync_bridge_stored", "Signed Shopify deliveries stored, by Shopify topic.", ["shopify_topic"]
)
KNOWN_ROUTES = frozenset({"/webhooks/shopify", "/webhooks/hubspot", "/healthz", "/readyz", "/metrics"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.path if request.path in KNOWN_ROUTES else "other"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        REQUESTS.labels(route, str(status)).inc()
        REQUEST_SECONDS.labels(route).observe(time.perf_counter() - started)
        if route == "/webhooks/shopify" and status == 200:
            STORED.labels(request.headers.get("X-Shopify-Topic", "?")[:64]).inc()
