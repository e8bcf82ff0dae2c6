"""X1's account set-up (``SHOPSYNC_COMMERCE_OBJECTS``) against an account HubSpot-shaped at the HTTP
level: what ``orders`` adds (order and cart properties with their upsert keys, the order pipeline's
stages by label, the association types read from the labels endpoint), and that ``deals`` asks
HubSpot exactly what it asked before."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from handlers import hubspot_paths as paths
from handlers.account_setup import (
    ALL_BUILT_IN,
    COMMERCE_PAIRS,
    COMMERCE_PROPERTIES,
    AccountSetupError,
    CommerceSetup,
    set_up_account,
)
from handlers.hubspot_api import HubSpotApi
from handlers.hubspot_client import HubSpotClient, RetryPolicy
from streams.rules.commerce import ORDER_STAGES
from streams.rules.journeys import STAGES

TYPE_IDS = {("orders", "contacts"): 507, ("line_items", "orders"): 514, ("carts", "contacts"): 586,
            ("line_items", "carts"): 591, ("carts", "orders"): 592, ("companies", "orders"): 510}  # fmt: skip


@dataclass
class Account:
    """Property definitions, a deal and an order pipeline, association types; every request kept."""

    order_stages: list[str] = field(default_factory=lambda: ["Open", "Processed", "Shipped", "Delivered",
                                                              "Cancelled"])  # fmt: skip
    properties: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for object_type, names in ALL_BUILT_IN.items():
            self.properties[object_type] = {
                n: {"name": n, "type": "string", "fieldType": "text"} for n in names
            }

    def handle(self, request: httpx.Request) -> httpx.Response:
        body: Any = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path))
        for object_type, defs in self.properties.items():
            if path == paths.properties(object_type):
                return httpx.Response(200, json={"results": list(defs.values())})
            if path == paths.property_batch(object_type, "create"):
                defs.update({b["name"]: b for b in body["inputs"]})
                return httpx.Response(201, json={"status": "COMPLETE", "results": body["inputs"]})
        if path == paths.pipelines("deals"):
            stages = [{"id": f"d{i}", "label": s} for i, s in enumerate(STAGES)]
            return httpx.Response(200, json={"results": [{"id": "default", "label": "Ecommerce Pipeline",
                                                          "stages": stages}]})  # fmt: skip
        if path == paths.pipelines("orders"):
            stages = [{"id": f"o{i}", "label": s} for i, s in enumerate(self.order_stages)]
            return httpx.Response(
                200, json={"results": [{"id": "op", "label": "Order Pipeline", "stages": stages}]}
            )
        for (a, b), type_id in TYPE_IDS.items():
            if path == paths.association_labels(a, b):
                listed = [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None},
                          {"category": "USER_DEFINED", "typeId": 900, "label": "Gift"}]  # fmt: skip
                return httpx.Response(200, json={"results": listed})
        if path == paths.ACCOUNT_DETAILS:
            return httpx.Response(200, json={"portalId": 1})
        return httpx.Response(404, json={"category": "NOT_FOUND", "message": f"unknown path {path}"})

    def api(self) -> HubSpotApi:
        transport = httpx.MockTransport(self.handle)
        return HubSpotApi(HubSpotClient("https://api.hubapi.com", "pat-test", transport=transport,
                                        retry=RetryPolicy(attempts=1)))  # fmt: skip


async def set_up(account: Account, mode: str) -> Any:
    api = account.api()
    try:
        return await set_up_account(api, "Ecommerce Pipeline", commerce=CommerceSetup(mode))
    finally:
        await api.close()


async def test_x1_deals_mode_asks_hubspot_nothing_about_orders_or_carts() -> None:
    account = Account()
    schema = await set_up(account, "deals")
    touched = " ".join(p for _, p in account.requests)
    assert "orders" not in touched and "carts" not in touched and "labels" not in touched
    assert schema.order_pipeline_id == "" and schema.association_types == {}
    assert (
        len(account.requests) == 7 + 5
    )  # five property lists (+ five creates: X2's companies too), pipelines, details


@pytest.mark.parametrize("mode", ["orders", "deals,orders"])
async def test_x1_orders_mode_sets_up_orders_carts_their_pipeline_and_association_types(mode: str) -> None:
    account = Account()
    schema = await set_up(account, mode)
    for object_type, wanted in COMMERCE_PROPERTIES.items():
        made = account.properties[object_type]
        assert {p.name for p in wanted} <= set(made)
        key = "shopify_order_key" if object_type == "orders" else "shopify_cart_key"
        assert made[key]["hasUniqueValue"] is True
    assert schema.order_pipeline_id == "op"
    assert list(schema.order_stage_ids) == list(ORDER_STAGES) == ["Open", "Processed", "Shipped", "Cancelled"]
    assert schema.order_stage_ids["Cancelled"] == "o4"
    assert {tuple(k.split("|")): v for k, v in schema.association_types.items()} == TYPE_IDS
    assert set(TYPE_IDS) == set(COMMERCE_PAIRS)
    assert bool(schema.stage_ids) == (mode == "deals,orders"), (
        "the deal pipeline only where deals are written"
    )


async def test_x1_an_order_pipeline_without_the_stages_stops_the_set_up_by_name() -> None:
    with pytest.raises(AccountSetupError, match="lacks the stages 'Open'"):
        await set_up(Account(order_stages=["New", "Processed", "Shipped", "Cancelled"]), "orders")
