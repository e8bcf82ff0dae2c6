"""``/metrics`` of the bridge, the worker and the writer parse as Prometheus text, and their
counters match what the test sent: every delivery the bridge stored, every record the worker
read from the Shopify topics, every request the writer made to HubSpot."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.dashboard.conftest import LiveRun


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def total(text: str, name: str, **labels: str) -> float:
    return sum(v for lbl, v in samples(text, name) if all(lbl.get(k) == x for k, x in labels.items()))


def test_the_bridge_counts_every_delivery_it_stored(live_run: LiveRun) -> None:
    webhooks = sum(1 for line in live_run.scenario if "shopify" in line)
    imports = sum(1 for line in live_run.scenario if "import" in line)
    stored = total(live_run.bridge_metrics, "shopsync_bridge_stored_total") - total(
        live_run.bridge_metrics_before, "shopsync_bridge_stored_total"
    )
    answered = total(live_run.bridge_metrics, "shopsync_bridge_requests_total", route="/webhooks/shopify",
                     status="200") - total(live_run.bridge_metrics_before, "shopsync_bridge_requests_total",
                                           route="/webhooks/shopify", status="200")  # fmt: skip
    assert stored == answered == webhooks
    assert sum(live_run.end_offsets.values()) == webhooks + imports
    assert samples(live_run.bridge_metrics, "shopsync_bridge_request_seconds_count")


def test_the_worker_counts_every_record_of_the_shopify_topics(live_run: LiveRun) -> None:
    text = live_run.worker_metrics
    for topic, records in live_run.end_offsets.items():
        assert total(text, "shopsync_worker_events_in_total", topic=topic) == records, topic
    assert total(text, "shopsync_worker_events_out_total") > 0
    assert total(text, "shopsync_worker_timers_fired_total", kind="journeys") > 0
    assert samples(text, "shopsync_worker_timers_pending")
    assert total(text, "shopsync_worker_dead_letters_total") == 0
    assert samples(text, "shopsync_worker_batch_seconds_bucket")
    lag = samples(text, "shopsync_worker_consumer_lag")
    assert lag and all(v == 0 for _, v in lag)


def test_the_writer_counts_every_hubspot_call_the_sandbox_answered(live_run: LiveRun) -> None:
    text = live_run.writer_metrics
    api_calls = sum(n for path, n in live_run.sandbox_stats["requests_by_path"].items()
                    if not path.startswith("/_sandbox"))  # fmt: skip
    # simulate itself deletes a contact in HubSpot the way a user would: a search, then a DELETE
    api_calls -= 2 * sum(1 for line in live_run.scenario if "hubspot" in line)
    assert total(text, "shopsync_hubspot_requests_total") == api_calls > 0
    assert total(text, "shopsync_hubspot_rate_limited_total") == live_run.sandbox_stats["rate_limited"]
    assert total(text, "shopsync_writer_outcomes_total", outcome="upserted") > 0
    assert total(text, "shopsync_writer_backlog") == 0
    assert live_run.json["/api/health.json"]["hubspot_calls"] == api_calls
