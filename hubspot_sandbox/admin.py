"""``/_sandbox/*``: inspection and control for tests, outside HubSpot's API (no token, no limits,
no faults): the whole account, request counts, a reset, runtime fault settings, and the declared
contract (``/_sandbox/rules``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from dataclasses import asdict

from aiohttp import web

from hubspot_sandbox import contract
from hubspot_sandbox import dump as account_dump
from hubspot_sandbox.errors import JSON, validation
from hubspot_sandbox.responses import json_response, read_body
from hubspot_sandbox.state import STATE, SandboxState

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

_JSON = "application/json"
_CHUNK = 1 << 20
_LIMITS = {"rate_limit_per_10s", "rate_limit_daily"}
_FAULTS = {"fault_5xx_rate", "latency_ms", "drop_rate", "batch_error_rate", "batch_error_category"}


def _settings(state: SandboxState) -> JSON:
    return {
        **asdict(state.faults.settings),
        "rate_limit_per_10s": state.limiter.per_10s,
        "rate_limit_daily": state.limiter.daily,
    }


@routes.get("/_sandbox/dump")
async def dump(request: web.Request) -> web.StreamResponse:
    """The whole account (``hubspot_sandbox.dump``), streamed: read in a worker thread on a
    read-only connection, so calls are answered (and written) while it runs, whatever its size."""
    store = request.app[STATE].store
    if store.in_memory:  # one connection only: read at once, between two calls
        return web.Response(
            body=store.run(lambda conn: b"".join(account_dump.pieces(conn))), content_type=_JSON
        )
    response = web.StreamResponse(headers={"Content-Type": _JSON})
    conn = await asyncio.to_thread(store.reader)
    pieces = account_dump.pieces(conn)
    try:
        chunk = await asyncio.to_thread(_next_chunk, pieces)  # a failure here still answers an error
        await response.prepare(request)
        try:
            while chunk:
                await response.write(chunk)
                chunk = await asyncio.to_thread(_next_chunk, pieces)
        except Exception as exc:  # the status is sent: cut the answer off so the client sees it failed
            log.warning("the dump stopped after its first bytes were sent: %s", type(exc).__name__)
            if request.transport is not None:
                request.transport.close()
            return response
    finally:
        pieces.close()
        await asyncio.to_thread(conn.close)
    await response.write_eof()
    return response


def _next_chunk(pieces: Generator[bytes]) -> bytes:
    """About 1 MiB of the document (b"" at its end), read in the calling (worker) thread."""
    out = bytearray()
    for piece in pieces:
        out += piece
        if len(out) >= _CHUNK:
            break
    return bytes(out)


@routes.get("/_sandbox/rules")
async def declared_rules(request: web.Request) -> web.Response:
    """The contract: endpoints, body fields, this account's properties, and the rules with sources."""
    return json_response(request.app[STATE].store.run(contract.describe))


@routes.get("/_sandbox/stats")
async def stats(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return json_response({**state.stats.snapshot(), "webhooks": state.webhooks.stats.as_json()})


@routes.post("/_sandbox/reset")
async def reset(request: web.Request) -> web.Response:
    """Wipe the account, counters and rate-limit windows; settings and faults stay as they are."""
    state = request.app[STATE]
    state.store.reset()
    state.stats.reset()
    state.limiter.reset()
    return json_response({"status": "reset"})


@routes.get("/_sandbox/faults")
async def get_faults(request: web.Request) -> web.Response:
    return json_response(_settings(request.app[STATE]))


@routes.post("/_sandbox/faults")
async def set_faults(request: web.Request) -> web.Response:
    """Change any of fault_5xx_rate, latency_ms, drop_rate, batch_error_rate, batch_error_category,
    rate_limit_per_10s, rate_limit_daily."""
    state, body = request.app[STATE], await read_body(request)
    unknown = set(body) - _LIMITS - _FAULTS
    if unknown:
        raise validation(f"Unknown settings: {sorted(unknown)}; known: {sorted(_LIMITS | _FAULTS)}")
    limits = {k: body[k] for k in _LIMITS & body.keys()}
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise validation(f"{name} must be a non-negative integer")
    try:
        state.faults.update({k: body[k] for k in _FAULTS & body.keys()})
    except ValueError as exc:
        raise validation(str(exc)) from None
    state.limiter.per_10s = limits.get("rate_limit_per_10s", state.limiter.per_10s)
    state.limiter.daily = limits.get("rate_limit_daily", state.limiter.daily)
    return json_response(_settings(state))
