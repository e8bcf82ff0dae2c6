"""Bridge deliveries/s at 64 concurrent clients, signed webhooks, acks=all.

``shopsync bridge`` runs as its own process on fresh topics; the load generator (``bench.loadgen``,
another process) keeps 64 connections busy, first on the bridge's liveness route (``GET /healthz``:
the same server, the same clients, no work: the baseline), then on ``POST /webhooks/shopify`` with
a generated store's bodies (customers, carts, checkouts, orders, products), each signed, each
with its own event id, each answered only after Kafka acknowledged it (acks=all, idempotent).
The ratio is signed deliveries/s over baseline requests/s; p99 is the signed route's.
"""

from __future__ import annotations

from bench.loadgen import Request, write_requests
from bench.stack import cpu_seconds, fresh_settings, run_loadgen, shopify_headers, start_bridge, work_dir
from bench.suite import BenchEnv, Figure, Measured
from devtools.samplestore import generate

CLIENTS = 64
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0


def signed_requests(customers: int) -> list[Request]:
    """Every delivery of a generated store, signed as Shopify signs it."""
    import orjson

    requests = []
    for event in generate(customers=customers, seed=11).ordered():
        body = orjson.dumps(event.body)
        requests.append(Request(event.event_id, "POST", "/webhooks/shopify",
                                shopify_headers(body, event.topic, event.event_id), body))  # fmt: skip
    return requests


async def measure(env: BenchEnv) -> Measured:
    work = work_dir(env, "bridge")
    settings = await fresh_settings(env, "bridge")
    signed, liveness = work / "signed.jsonl", work / "liveness.jsonl"
    write_requests(signed, signed_requests(customers=100))
    write_requests(liveness, [Request("healthz", "GET", "/healthz", {}, b"")])
    duration = "3" if env.quick else "10"
    bridge = await start_bridge(settings, work)
    url = f"http://127.0.0.1:{settings.bridge_port}"
    common = ("--url", url, "--concurrency", str(CLIENTS), "--duration", duration, "--warmup", "1")
    try:
        cpu_start = cpu_seconds(bridge)
        base = await run_loadgen(*common, "--requests", str(liveness))
        cpu_base = cpu_seconds(bridge)
        load = await run_loadgen(*common, "--requests", str(signed), "--number-header", "X-Shopify-Event-Id")
        cpu_load = cpu_seconds(bridge)
    finally:
        bridge.stop()
    # CPU per request over each whole phase (warm-up included, as the requests it served are).
    base_us = (cpu_base - cpu_start) * 1e6 / max(1, base["sent"])
    load_us = (cpu_load - cpu_base) * 1e6 / max(1, load["sent"])
    rate, baseline = load["ok_per_s"], base["ok_per_s"]
    ratio = rate / baseline if baseline else 0.0
    refused = load["answered"] - load["ok"] + load["failures"]
    return Measured(
        result=rate, unit="deliveries/s", baseline=baseline, baseline_unit="deliveries/s", ratio=ratio,
        met=ratio >= TARGET_RATIO and load["p99_ms"] < TARGET_P99_MS and refused == 0,
        detail=f"{CLIENTS} clients; signed p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms; "
        f"liveness p99 {base['p99_ms']:.0f} ms; {load['ok']:,} stored, {refused} not; bridge CPU "
        f"{load_us:.0f} us per delivery, {base_us:.0f} us per liveness request",
        extra={"p50_ms": load["p50_ms"], "p99_ms": load["p99_ms"], "baseline_p99_ms": base["p99_ms"],
               "not_stored": refused, "cpu_us_per_delivery": load_us, "cpu_us_per_baseline": base_us},
    )  # fmt: skip


FIGURE = Figure(
    name="bridge",
    title="bridge deliveries/s at 64 clients, signed, acks=all",
    target=">= 0.5 of baseline, p99 < 50 ms",
    baseline="the same server's no-op route (GET /healthz), same clients",
    run=measure,
)

if __name__ == "__main__":
    from bench.standalone import run_alone

    run_alone(FIGURE)
