"""An HTTP load generator for the HTTP-side figures, run as a process of its own.

It runs apart from the measured server so the client never shares the server's core (on a 2-core
machine an in-process client would halve what the server gets). It uses aiohttp's client, which
costs a fraction of httpx's per request, so the client is not what limits a figure.

Requests come from a JSON-lines file, one ``{"id", "method", "path", "headers", "body"}`` per line
(``body`` in base64, signed already by whoever wrote it). Two modes:

- closed loop (``--concurrency N --duration S``): N clients, each sending its next request as soon
  as its previous one was answered, cycling over the file; prints one JSON summary (answered,
  statuses, rate, p50/p99 in ms) of the requests that *started* after ``--warmup`` seconds.
- open loop (``--rate R``): request i is sent at start + i/R whatever the answers, one pass over
  the file (the steady arrival rate of Shopify's webhooks); writes one line per request
  (``id``, wall-clock send time in ms, status, latency) to ``--out`` and prints the summary.

``--number-header NAME`` gives every request a distinct value of header NAME (its value plus
"-n"), so that cycling over the file never repeats an event id.

Run: .venv/bin/python -m bench.loadgen --requests R.jsonl --url http://127.0.0.1:8080 ...
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson


@dataclass(frozen=True)
class Request:
    id: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def write_requests(path: Path, requests: list[Request]) -> None:
    """The file ``--requests`` reads."""
    with open(path, "wb") as out:
        for r in requests:
            line = {"id": r.id, "method": r.method, "path": r.path, "headers": r.headers,
                    "body": base64.b64encode(r.body).decode()}  # fmt: skip
            out.write(orjson.dumps(line) + b"\n")


def read_requests(path: Path) -> list[Request]:
    requests = []
    for text in path.read_bytes().splitlines():
        line = orjson.loads(text)
        requests.append(Request(line["id"], line["method"], line["path"], line["headers"],
                                base64.b64decode(line["body"])))  # fmt: skip
    return requests


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0-100) of ``values``; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Tally:
    """What was answered: per-status counts and latencies (ms) of the counted requests."""

    statuses: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0  # no answer at all (connection refused, reset, timeout)
    sent: int = 0  # every request sent, warm-up included

    def add(self, status: int | None, latency_ms: float) -> None:
        if status is None:
            self.failures += 1
            return
        self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
        self.latencies_ms.append(latency_ms)

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        answered = len(self.latencies_ms)
        ok = sum(n for s, n in self.statuses.items() if s.startswith("2"))
        return {
            "answered": answered, "ok": ok, "failures": self.failures, "statuses": self.statuses,
            "elapsed_s": elapsed_s, "ok_per_s": ok / elapsed_s if elapsed_s > 0 else 0.0,
            "p50_ms": percentile(self.latencies_ms, 50), "p99_ms": percentile(self.latencies_ms, 99),
            "max_ms": max(self.latencies_ms, default=math.nan), "sent": self.sent,
        }  # fmt: skip


async def _send(
    http: aiohttp.ClientSession, url: str, request: Request, headers: dict[str, str]
) -> int | None:
    try:
        async with http.request(request.method, url + request.path, data=request.body, headers=headers) as r:
            await r.read()
            return r.status
    except (aiohttp.ClientError, TimeoutError):
        return None


def _headers(request: Request, number_header: str | None, n: int) -> dict[str, str]:
    if number_header is None or number_header not in request.headers:
        return request.headers
    return {**request.headers, number_header: f"{request.headers[number_header]}-{n}"}


async def closed_loop(
    url: str, requests: list[Request], concurrency: int, duration_s: float, warmup_s: float,
    number_header: str | None,
) -> dict[str, Any]:  # fmt: skip
    tally = Tally()
    counter = iter(range(sys.maxsize))
    loop = asyncio.get_running_loop()
    start = loop.time()
    measured_from, stop_at = start + warmup_s, start + warmup_s + duration_s
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def client() -> None:
            while (sent_at := loop.time()) < stop_at:
                n = next(counter)
                request = requests[n % len(requests)]
                status = await _send(http, url, request, _headers(request, number_header, n))
                tally.sent += 1
                if sent_at >= measured_from:
                    tally.add(status, (loop.time() - sent_at) * 1000)

        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = loop.time() - measured_from
    return tally.summary(elapsed)


async def open_loop(
    url: str, requests: list[Request], rate: float, number_header: str | None
) -> tuple[dict[str, Any], bytes]:
    """The summary, and one JSON line per request sent (its id, send time, status, latency)."""
    tally = Tally()
    loop = asyncio.get_running_loop()
    lines: list[bytes] = []
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(n: int, request: Request) -> None:
            sent_ms, sent_at = time.time() * 1000, loop.time()
            status = await _send(http, url, request, _headers(request, number_header, n))
            latency = (loop.time() - sent_at) * 1000
            tally.sent += 1
            tally.add(status, latency)
            lines.append(orjson.dumps({"id": request.id, "sent_ms": sent_ms, "status": status,
                                       "latency_ms": latency}))  # fmt: skip

        start = loop.time()
        tasks = []
        for n, request in enumerate(requests):
            delay = start + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n, request)))
        await asyncio.gather(*tasks)
        elapsed = loop.time() - start
    return tally.summary(elapsed), b"\n".join(lines) + b"\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=None, help="Open loop at this many requests/s.")
    parser.add_argument("--out", type=Path, default=None, help="Open loop: per-request lines.")
    parser.add_argument("--number-header", default=None)
    args = parser.parse_args()
    requests = read_requests(args.requests)
    if args.rate is not None:
        if args.out is None:
            parser.error("--rate needs --out")
        summary, lines = asyncio.run(open_loop(args.url, requests, args.rate, args.number_header))
        args.out.write_bytes(lines)
    else:
        summary = asyncio.run(
            closed_loop(args.url, requests, args.concurrency, args.duration, args.warmup, args.number_header)
        )
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")


if __name__ == "__main__":
    main()
