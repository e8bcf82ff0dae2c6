"""The ecommerce reports (E1) of a HubSpot account: what HubSpot's own reports would show.

Reads the deals and line items an account holds (the sandbox's dump, or ``simulate``'s read-back
of a real account: the same shape) and folds them with the very arithmetic the pipeline uses
(``streams.rules.reports``), so the reports the product computes from its streams can be compared,
number for number, with the account those streams produced.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from streams.rules.keys import is_variant_key
from streams.rules.reports import DealFacts, compute, deals_by_stage, facts_of


def account_facts(account: dict[str, Any]) -> list[DealFacts]:
    """Each deal of the account (by ``shopify_deal_key``) with its line items (by the journey
    their ``shopify_line_item_key`` names, ``<journey>|<line>``)."""
    lines: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in account.get("line_items", []):
        key = item["properties"].get("shopify_line_item_key") or ""
        lines[key.split("|", 1)[0]].append(item["properties"])
    facts = []
    for deal in account.get("deals", []):
        props = deal["properties"]
        key = props.get("shopify_deal_key")
        if key:
            facts.append(facts_of(key, deal.get("stage_label"), props, lines.get(key, [])))
    return facts


def account_reports(account: dict[str, Any]) -> dict[str, Any]:
    return compute(account_facts(account))


def account_summary(account: dict[str, Any]) -> dict[str, Any]:
    """S1 as the dashboard's summary endpoint shows it, from the account."""
    variants = sum(
        1
        for p in account.get("products", [])
        if is_variant_key(p["properties"].get("shopify_product_key") or "")
    )
    stages = deals_by_stage(account_facts(account))
    return {
        "contacts": len(account.get("contacts", [])),
        "deals": sum(stages.values()),
        "deals_by_stage": stages,
        "orders": len(account.get("orders", [])),
        "carts": len(account.get("carts", [])),
        "companies": len(account.get("companies", [])),
        "products": len(account.get("products", [])) - variants,
        "variants": variants,
        "line_items": len(account.get("line_items", [])),
    }
