"""The HTTP side: ``POST /admin/api/{version}/graphql.json`` with Shopify's token check, cost
check and throttling, the bulk exports' downloads (with HTTP Range, as Cloud Storage serves
them), and the ``/_sandbox`` control routes. ``running_shopify_sandbox`` (tests) and ``serve``
(the command line) start it.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from graphql import (
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    execute,
    parse,
    validate,
)

from shopify_sandbox import errors, rules
from shopify_sandbox.config import ShopifySandboxConfig
from shopify_sandbox.cost import MAX_QUERY_COST, Bucket, Coster
from shopify_sandbox.operations import Failure, Operations
from shopify_sandbox.resolvers import Context, wire
from shopify_sandbox.schema import VERSIONS, schema_for, served_version
from shopify_sandbox.shop import ShopData

log = logging.getLogger(__name__)
SANDBOX: web.AppKey[ShopifySandbox] = web.AppKey("shopify_sandbox")


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


class ShopifySandbox:
    """A running sandbox: ``url`` is its base (``{url}/admin/api/2026-04/graphql.json``);
    ``operations`` and ``bucket`` are reachable in-process. ``monotonic`` drives the bucket and
    ``now`` the operations' timestamps: a test passes its own to let time pass."""

    def __init__(
        self,
        config: ShopifySandboxConfig,
        *,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.shop = ShopData(
            config.customers, config.seed, config.fixtures_dir, config.repeat_orders, config.companies
        )
        self.operations = Operations(
            self.shop, now or (lambda: datetime.now(UTC)), config.data_dir, config.poll_wait_s
        )
        self.bucket = Bucket(config.plan, monotonic)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app[SANDBOX] = self
        app.router.add_post("/admin/api/{version}/graphql.json", _graphql)
        app.router.add_get("/_sandbox/bulk/{number:\\d+}.jsonl", _download)
        app.router.add_post("/_sandbox/fail-next", _fail_next)
        app.router.add_get("/_sandbox/rules", _rules)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self.operations.base_url = self.url
        log.info("Shopify sandbox listening on %s (%d customers)", self.url, self.config.customers)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.operations.close()


def _authorized(request: web.Request, token: str) -> bool:
    given = request.headers.get("X-Shopify-Access-Token", "")
    return bool(given) and hmac.compare_digest(given.encode(), token.encode())


async def _request_body(request: web.Request) -> tuple[str, dict[str, Any], str | None]:
    if request.content_type == "application/graphql":
        return await request.text(), {}, None
    body = orjson.loads(await request.read())
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise ValueError("a JSON object with a query string")
    return body["query"], body.get("variables") or {}, body.get("operationName")


async def _graphql(request: web.Request) -> web.Response:
    """Every answer says the version it was made in (``X-Shopify-API-Version``), as Shopify's do."""
    version = served_version(request.match_info["version"])
    if version is None:
        return _json({"errors": "Not Found"}, 404)
    response = await _graphql_in(request, version)
    response.headers["X-Shopify-API-Version"] = version
    return response


async def _graphql_in(request: web.Request, version: str) -> web.Response:
    sandbox = request.app[SANDBOX]
    if not _authorized(request, sandbox.config.token):
        return _json(errors.UNAUTHORIZED, 401)
    try:
        query, variables, operation_name = await _request_body(request)
    except ValueError:
        return _json({"errors": {"query": "Required parameter missing or invalid"}}, 400)
    schema = wire(schema_for(version))
    try:
        document = parse(query)
    except GraphQLError as error:
        return _json({"errors": [errors.graphql_error(error)]})
    problems = validate(schema, document)
    if problems:
        return _json({"errors": [errors.graphql_error(p) for p in problems]})
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = next(
        (o for o in operations if operation_name is None or (o.name and o.name.value == operation_name)), None
    )
    if chosen is None:
        return _json({"errors": [{"message": "An operation name is required"}]})
    coster = Coster(schema, document, variables)
    requested = coster.operation(chosen)
    if requested > MAX_QUERY_COST:
        message = (
            f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST})."
        )
        return _answer(
            sandbox, None, [errors.coded(message, "MAX_COST_EXCEEDED", cost=requested)], requested, None
        )
    if not sandbox.bucket.take(requested):
        return _answer(sandbox, None, [errors.throttled()], requested, None)
    context = Context(sandbox.shop, sandbox.operations, version, schema, set())
    outcome = execute(
        schema, document, context_value=context, variable_values=variables, operation_name=operation_name
    )
    result: ExecutionResult = await outcome if asyncio.iscoroutine(outcome) else outcome  # type: ignore[assignment]
    actual = min(requested, coster.operation(chosen, result.data, actual=True))
    sandbox.bucket.refund(requested - actual)
    problems_out = [errors.graphql_error(e) for e in result.errors or []]
    return _answer(sandbox, result.data, problems_out, requested, actual)


def _answer(
    sandbox: ShopifySandbox, data: Any, problems: list[dict[str, Any]], requested: int, actual: int | None
) -> web.Response:
    body: dict[str, Any] = {}
    if problems:
        body["errors"] = problems
    if data is not None:
        body["data"] = data
    body["extensions"] = {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": sandbox.bucket.status(),
        }
    }
    return _json(body)


async def _download(request: web.Request) -> web.StreamResponse:
    """The export, as its signed storage URL serves it: no Shopify token, Range honoured (206)."""
    sandbox = request.app[SANDBOX]
    number = int(request.match_info["number"])
    op = next((o for o in sandbox.operations.all if o.number == number), None)
    if op is None or op.path is None or not op.path.exists():
        raise web.HTTPNotFound()
    return web.FileResponse(op.path, headers={"Content-Type": "application/jsonl"})


async def _fail_next(request: web.Request) -> web.Response:
    """Make the next bulk operation fail: ``{"errorCode": "INTERNAL_SERVER_ERROR"|"TIMEOUT"|
    "ACCESS_DENIED", "afterRoots": N}`` (N root objects reach ``partialDataUrl``)."""
    body = orjson.loads(await request.read() or b"{}")
    code = body.get("errorCode", "INTERNAL_SERVER_ERROR")
    if code not in ("ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT"):
        return _json({"error": f"unknown BulkOperationErrorCode {code}"}, 400)
    request.app[SANDBOX].operations.fail_next = Failure(code, int(body.get("afterRoots", 0)))
    return _json({"failNext": {"errorCode": code, "afterRoots": int(body.get("afterRoots", 0))}})


async def _rules(_: web.Request) -> web.Response:
    return _json({"rules": rules.as_json(), "versions": list(VERSIONS)})


@asynccontextmanager
async def running_shopify_sandbox(
    config: ShopifySandboxConfig,
    *,
    now: Callable[[], datetime] | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> AsyncIterator[ShopifySandbox]:
    sandbox = ShopifySandbox(config, now=now, monotonic=monotonic)
    try:
        await sandbox.start()
        yield sandbox
    finally:
        await sandbox.stop()


async def _serve_until_signalled(config: ShopifySandboxConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with running_shopify_sandbox(config) as sandbox:
        print(sandbox.url, flush=True)
        await stop.wait()


def serve(config: ShopifySandboxConfig) -> None:
    """Run until SIGINT or SIGTERM; prints the base URL on stdout once it answers."""
    asyncio.run(_serve_until_signalled(config))
