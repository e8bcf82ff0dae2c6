"""The sandbox's declared contract and rules table: RULES.md matches rules.py, every rule has a
test that sends the refused request, every implemented endpoint declares its body, and
``check_request`` flags what a writer must not send."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import httpx

from hubspot_sandbox import contract, rules
from tests.sandbox.support import post, text_property

RULES_MD = Path(contract.__file__).with_name("RULES.md")

RULE_TESTS = {
    "tier-rate-limits": ("test_sandbox_tiers", "test_each_tier_has_hubspots_private_app_limits"),
    "search-rate-limit": ("test_sandbox_tiers", "test_search_takes_five_requests_a_second_per_account"),
    "search-no-rate-headers": ("test_sandbox_tiers", "test_search_answers_without_rate_limit_headers"),
    "free-no-new-pipelines": (
        "test_sandbox_tiers",
        "test_a_free_account_has_the_default_pipeline_and_cannot_create_one",
    ),
    "stages-on-every-tier": ("test_sandbox_tiers", "test_a_free_account_adds_stages_to_its_default_pipeline"),
    "default-pipeline": (
        "test_sandbox_tiers",
        "test_a_free_account_has_the_default_pipeline_and_cannot_create_one",
    ),
    "stage-probability": ("test_sandbox_tiers", "test_deal_stage_probabilities_are_tenths_between_0_and_1"),
    "stage-closed": ("test_sandbox_tiers", "test_a_stage_marked_closed_against_its_probability_is_refused"),
    "stage-label-unique": ("test_sandbox_tiers", "test_stage_labels_are_unique_in_a_pipeline"),
    "read-only-values": (
        "test_sandbox_properties",
        "test_calculated_and_read_only_properties_are_refused_on_every_write",
    ),
    "line-item-calculated": (
        "test_sandbox_properties",
        "test_line_item_discount_and_amounts_are_calculated_by_hubspot",
    ),
    "line-item-price-not-negative": ("test_sandbox_properties", "test_a_negative_line_item_price_is_refused"),
    "line-item-one-parent": ("test_sandbox_associations", "test_a_line_item_has_one_deal"),
    "commerce-object-types": (
        "test_sandbox_commerce",
        "test_orders_carts_and_companies_answer_by_every_name_hubspot_accepts",
    ),
    "commerce-properties": (
        "test_sandbox_commerce",
        "test_order_and_cart_properties_hubspot_sets_are_refused",
    ),
    "order-pipeline": (
        "test_sandbox_commerce",
        "test_the_order_pipeline_is_there_and_order_stages_are_checked",
    ),
    "order-stage": ("test_sandbox_commerce", "test_the_order_pipeline_is_there_and_order_stages_are_checked"),
    "commerce-association-types": (
        "test_sandbox_commerce",
        "test_labels_list_hubspot_defined_types_of_the_new_pairs",
    ),
    "property-group-exists": (
        "test_sandbox_properties",
        "test_a_property_in_an_unknown_group_is_refused_until_the_group_exists",
    ),
    "property-type-field-type": (
        "test_sandbox_properties",
        "test_type_and_field_type_pairs_outside_hubspots_table_are_refused",
    ),
    "property-options": ("test_sandbox_properties", "test_options_need_label_value_and_hidden"),
    "archive-missing-204": ("test_sandbox_associations", "test_archiving_ids_that_name_nothing_answers_204"),
    "association-labels": (
        "test_sandbox_associations",
        "test_a_label_of_another_pair_or_an_unknown_type_is_refused",
    ),
    "associate-default": (
        "test_sandbox_associations",
        "test_batch_associate_default_links_with_the_unlabelled_type",
    ),
    "subscription-status-request": (
        "test_sandbox_subscriptions",
        "test_x4_a_malformed_status_change_is_refused_whole",
    ),
    "subscription-gdpr-legal-basis": (
        "test_sandbox_subscriptions",
        "test_x4_a_gdpr_account_refuses_a_change_without_a_legal_basis",
    ),
    "subscription-resubscribe": (
        "test_sandbox_subscriptions",
        "test_x4_the_current_api_resubscribes_an_address_that_opted_out",
    ),
}


def test_rules_md_holds_the_rules_table() -> None:
    assert rules.markdown_table() in RULES_MD.read_text(encoding="utf-8")
    assert all(rule.sources for rule in rules.RULES)


def test_every_rule_has_a_test_that_sends_the_refused_request() -> None:
    assert set(RULE_TESTS) == {rule.id for rule in rules.RULES}
    for module, name in RULE_TESTS.values():
        assert callable(getattr(importlib.import_module(f"tests.sandbox.{module}"), name)), name


def test_every_endpoint_with_a_body_declares_its_fields() -> None:
    implemented = {(e["method"], e["path"]) for e in contract.endpoints()}
    with_body = {(m, p) for m, p in implemented if m not in ("GET", "DELETE")}
    assert set(contract.BODIES) == with_body


async def test_the_contract_is_served_with_the_accounts_properties(client: httpx.AsyncClient) -> None:
    await post(client, "/crm/v3/properties/deals", text_property("shopify_key", "dealinformation"), 201)
    described = (await client.get("/_sandbox/rules")).json()
    assert {
        "method": "POST",
        "path": "/crm/v4/associations/{from_type}/{to_type}/batch/associate/default",
    } in (described["endpoints"])
    deals = described["objects"]["deals"]["properties"]
    assert deals["shopify_key"] == {
        "type": "string",
        "fieldType": "text",
        "readOnlyValue": False,
        "calculated": False,
        "hubspotDefined": False,
    }
    assert described["objects"]["line_items"]["properties"]["hs_total_discount"]["readOnlyValue"] is True
    assert [r["id"] for r in described["rules"]] == [r.id for r in rules.RULES]


async def test_check_request_flags_what_the_sandbox_does_not_declare(client: httpx.AsyncClient) -> None:
    described: dict[str, Any] = (await client.get("/_sandbox/rules")).json()

    def check(method: str, path: str, body: Any = None) -> list[str]:
        return contract.check_request(described, method, path, body)

    upsert = {"inputs": [{"id": "a@example.com", "idProperty": "email", "properties": {"firstname": "A"}}]}
    assert check("POST", "/crm/v3/objects/contacts/batch/upsert", upsert) == []
    assert check("GET", "/crm/v3/pipelines/deals") == []
    assert check("PATCH", "/crm/v3/objects/0-3/123", {"properties": {"dealname": "d"}}) == []
    assert check("GET", "/crm/objects/2026-03/order") != []  # date-based paths: not served here
    assert check("GET", "/crm/v3/objects/tickets/1") != []  # an object type the sandbox lacks
    order = {"inputs": [{"properties": {"hs_order_name": "#1001", "hs_homecurrency_amount": "3"}}]}
    assert check("POST", "/crm/v3/objects/order/batch/create", order) == [
        "/crm/v3/objects/{object_type}/batch/create: orders.hs_homecurrency_amount is read-only"
        " (HubSpot calculates it)"
    ]
    assert check("GET", "/crm/v3/pipelines/orders") == []
    assert check("GET", "/crm/v4/associations/orders/contacts/labels") == []
    assert check("PATCH", "/crm/v3/pipelines/deals/default", {}) == [
        "PATCH /crm/v3/pipelines/deals/default: no such endpoint in the sandbox"
    ]
    [unknown_field] = check("POST", "/crm/v3/objects/contacts/batch/upsert", {**upsert, "mode": "x"})
    assert "unknown field 'mode'" in unknown_field
    line = {"inputs": [{"properties": {"price": "1", "hs_total_discount": "0", "colour": "red"}}]}
    batch = "/crm/v3/objects/{object_type}/batch/create"
    assert check("POST", "/crm/v3/objects/line_items/batch/create", line) == [
        f"{batch}: line_items.hs_total_discount is read-only (HubSpot calculates it)",
        f"{batch}: line_items has no property 'colour'",
    ]
    [patched] = check("PATCH", "/crm/v3/objects/line_items/5", {"properties": {"amount": "3"}})
    assert "line_items.amount is read-only" in patched
    options = {
        "name": "flag",
        "label": "F",
        "type": "bool",
        "fieldType": "booleancheckbox",
        "groupName": "dealinformation",
        "options": [{"label": "Yes", "value": "true", "hidden": False, "colour": "red"}],
    }
    assert check("POST", "/crm/v3/properties/deals", options) == [
        "/crm/v3/properties/{object_type}: unknown field options[0].colour"
    ]
