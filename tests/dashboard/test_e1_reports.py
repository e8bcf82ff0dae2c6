"""E1: the eight ecommerce reports, computed live from the streams, equal what the HubSpot account
holds (the same arithmetic over the sandbox's deals and line items) and what a replay of the
topics rebuilds; S1's summary equals the account's counts."""

from __future__ import annotations

from devtools.account_reports import account_reports, account_summary
from tests.dashboard.conftest import LiveRun

EIGHT = (
    "revenue", "orders", "average_order_value", "abandoned_checkouts", "recovered_checkouts",
    "new_customer_orders", "repeat_purchase_rate", "customer_lifetime_value",
)  # fmt: skip


def test_e1_reports_equal_what_the_hubspot_account_holds(live_run: LiveRun) -> None:
    reports = live_run.json["/api/reports.json"]
    assert reports == account_reports(live_run.account)
    usd = reports["USD"]
    assert all(key in usd["total"] for key in EIGHT)
    assert usd["total"]["orders"] > 0 and usd["total"]["abandoned_checkouts"] > 0
    assert usd["total"]["recovered_checkouts"] > 0, "the sample store recovers some checkouts"
    assert usd["top_products_by_revenue"] and usd["top_variants_by_units"]
    deals = [d for d in live_run.account["deals"] if d["stage_label"] in ("Processed", "Shipped")]
    assert usd["total"]["orders"] >= len(deals)


def test_e1_reports_are_rebuilt_exactly_by_replay(live_run: LiveRun) -> None:
    assert live_run.replayed_reports == live_run.json["/api/reports.json"]


def test_s1_summary_equals_the_accounts_counts(live_run: LiveRun) -> None:
    summary = live_run.json["/api/summary.json"]
    assert summary == account_summary(live_run.account)
    assert summary["contacts"] == len(live_run.account["contacts"]) > 0
    assert sum(summary["deals_by_stage"].values()) == len(live_run.account["deals"])
