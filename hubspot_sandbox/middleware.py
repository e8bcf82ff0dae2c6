"""What happens to every request before a route sees it.

For HubSpot's API (``/crm/*``, ``/account-info/*``: everything but ``/_sandbox/*``), in HubSpot's
order as far as a client can tell: count it, add the injected latency, maybe drop the connection
or answer a 5xx (before any work), check the bearer token, apply the rate limits; then attach the
rate-limit headers to whatever the answer is (HubSpot sends none on search). ``/_sandbox/*``
skips all of that. Every error becomes a JSON body.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from hubspot_sandbox.errors import HubSpotError
from hubspot_sandbox.responses import correlation_id, error_response, json_response
from hubspot_sandbox.state import STATE

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more"
    " details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run the route; HubSpot-shaped JSON for every error, including aiohttp's own 404/405."""
    try:
        return await handler(request)
    except HubSpotError as error:
        return error_response(error)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        category = "OBJECT_NOT_FOUND" if exc.status == 404 else "VALIDATION_ERROR"
        return error_response(HubSpotError(exc.status, category, exc.reason))
    except Exception:
        log.exception("sandbox route %s %s failed", request.method, request.path)
        return error_response(HubSpotError(500, "INTERNAL_ERROR", "internal error"))


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


def _is_search(request: web.Request) -> bool:
    """``POST /crm/v3/objects/{type}/search``: its own limit, and no rate-limit headers."""
    return request.method == "POST" and _route_template(request) == "/crm/v3/objects/{object_type}/search"


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@web.middleware
async def crm_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_sandbox/"):
        return await _answer(request, handler)
    state = request.app[STATE]
    token = state.config.token.get_secret_value()
    state.stats.request(request.method, _route_template(request), request.path)
    if state.faults.latency_s > 0:
        await asyncio.sleep(state.faults.latency_s)
    if state.faults.drop():
        state.stats.dropped += 1
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=204)  # never reaches the client: the connection is gone
    response: web.StreamResponse
    searching = _is_search(request)
    injected = state.faults.server_error()
    if injected is not None:
        state.stats.injected_5xx += 1
        response = error_response(injected)
    elif not _authorized(request, token):
        response = error_response(HubSpotError(401, "INVALID_AUTHENTICATION", _AUTH_MESSAGE))
    else:
        refusal = state.limiter.acquire(token, search=searching)
        if refusal is not None:
            body = {
                "status": "error",
                "message": refusal.message,
                "errorType": "RATE_LIMIT",
                "correlationId": correlation_id(),
                "policyName": refusal.policy,
            }
            headers = {} if refusal.retry_after_s is None else {"Retry-After": str(refusal.retry_after_s)}
            response = json_response(body, 429, headers)
        else:
            response = await _answer(request, handler)
    if not searching:
        response.headers.update(state.limiter.headers(token))
    state.stats.answered(response.status)
    return response
