"""Associations and archives as HubSpot answers them: USER_DEFINED labels, the default-type batch,
one deal per line item, and 204 for archiving ids that name nothing (sources in RULES.md)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.support import post

V4 = "/crm/v4/associations"


async def make(client: httpx.AsyncClient, object_type: str, count: int) -> list[str]:
    inputs: list[dict[str, Any]] = [{"properties": {}} for _ in range(count)]
    made = await post(client, f"/crm/v3/objects/{object_type}/batch/create", {"inputs": inputs}, 201)
    return [r["id"] for r in made["results"]]


def link(from_id: str, to_id: str, types: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"from": {"id": from_id}, "to": {"id": to_id}}
    if types is not None:
        item["types"] = types
    return item


async def associated(client: httpx.AsyncClient, from_type: str, object_id: str, to_type: str) -> list[Any]:
    found = await client.get(f"/crm/v4/objects/{from_type}/{object_id}/associations/{to_type}")
    assert found.status_code == 200, found.text
    return list(found.json()["results"])


async def test_user_defined_labels_are_made_listed_and_used(client: httpx.AsyncClient) -> None:
    made = await post(
        client,
        f"{V4}/deals/contacts/labels",
        {"label": "Buyer", "name": "buyer", "inverseLabel": "Bought"},
        200,
    )
    forward, backward = made["results"]
    assert forward["category"] == backward["category"] == "USER_DEFINED"
    assert (forward["label"], backward["label"]) == ("Buyer", "Bought")
    listed = (await client.get(f"{V4}/deals/contacts/labels")).json()["results"]
    assert listed == [{"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None}, forward]
    await post(client, f"{V4}/deals/contacts/labels", {"label": "Buyer", "name": "buyer"}, 409)

    [deal], [contact] = await make(client, "deals", 1), await make(client, "contacts", 1)
    labelled = [{"associationCategory": "USER_DEFINED", "associationTypeId": forward["typeId"]}]
    body = await post(
        client, f"{V4}/deals/contacts/batch/create", {"inputs": [link(deal, contact, labelled)]}, 201
    )
    assert body["results"][0]["labels"] == ["Buyer"]
    [row] = await associated(client, "deals", deal, "contacts")
    assert row["associationTypes"] == [
        {"category": "HUBSPOT_DEFINED", "typeId": 3, "label": None},
        {"category": "USER_DEFINED", "typeId": forward["typeId"], "label": "Buyer"},
    ]
    [back] = await associated(client, "contacts", contact, "deals")
    assert {"category": "USER_DEFINED", "typeId": backward["typeId"], "label": "Bought"} in back[
        "associationTypes"
    ]


async def test_a_label_of_another_pair_or_an_unknown_type_is_refused(client: httpx.AsyncClient) -> None:
    made = await post(client, f"{V4}/deals/line_items/labels", {"label": "Bundle", "name": "bundle"}, 200)
    other_pair = made["results"][0]["typeId"]
    [deal], [contact] = await make(client, "deals", 1), await make(client, "contacts", 1)
    for types in (
        [{"associationCategory": "USER_DEFINED", "associationTypeId": other_pair}],
        [{"associationCategory": "USER_DEFINED", "associationTypeId": 987654}],
        [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 19}],
    ):
        body = await post(
            client, f"{V4}/deals/contacts/batch/create", {"inputs": [link(deal, contact, types)]}, 400
        )
        assert body["category"] == "VALIDATION_ERROR"


async def test_batch_associate_default_links_with_the_unlabelled_type(client: httpx.AsyncClient) -> None:
    [deal], contacts = await make(client, "deals", 1), await make(client, "contacts", 2)
    inputs = [link(deal, contacts[0]), link(deal, contacts[1]), link(deal, "999999")]
    body = await post(client, f"{V4}/deals/contacts/batch/associate/default", {"inputs": inputs}, 207)
    assert [r["to"]["id"] for r in body["results"]] == contacts
    assert body["results"][0]["associationSpec"] == {
        "associationCategory": "HUBSPOT_DEFINED",
        "associationTypeId": 3,
    }
    assert body["errors"][0]["category"] == "OBJECT_NOT_FOUND"
    rows = await associated(client, "deals", deal, "contacts")
    assert sorted(r["toObjectId"] for r in rows) == sorted(int(c) for c in contacts)
    ok = await post(client, f"{V4}/deals/contacts/batch/associate/default", {"inputs": inputs[:1]}, 200)
    assert ok["status"] == "COMPLETE"


async def test_a_line_item_has_one_deal(client: httpx.AsyncClient) -> None:
    deals, [item] = await make(client, "deals", 2), await make(client, "line_items", 1)
    to_deal = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]
    await post(
        client, f"{V4}/line_items/deals/batch/create", {"inputs": [link(item, deals[0], to_deal)]}, 201
    )
    again = await post(
        client, f"{V4}/line_items/deals/batch/create", {"inputs": [link(item, deals[0], to_deal)]}, 201
    )
    assert again["results"]  # the same deal again is fine

    second = await post(
        client, f"{V4}/line_items/deals/batch/create", {"inputs": [link(item, deals[1], to_deal)]}, 207
    )
    assert second["errors"][0]["category"] == "VALIDATION_ERROR"
    assert "one single parent" in second["errors"][0]["message"]
    from_deal = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 19}]
    reverse = await post(
        client, f"{V4}/deals/line_items/batch/create", {"inputs": [link(deals[1], item, from_deal)]}, 207
    )
    assert reverse["errors"][0]["category"] == "VALIDATION_ERROR"
    default = await post(
        client, f"{V4}/line_items/deals/batch/associate/default", {"inputs": [link(item, deals[1])]}, 207
    )
    assert default["errors"][0]["category"] == "VALIDATION_ERROR"
    assert [r["toObjectId"] for r in await associated(client, "line_items", item, "deals")] == [int(deals[0])]

    inline = {
        "properties": {},
        "associations": [{"to": {"id": deal}, "types": to_deal} for deal in deals],
    }
    body = await post(client, "/crm/v3/objects/line_items/batch/create", {"inputs": [inline]}, 400)
    assert body["category"] == "VALIDATION_ERROR"


async def test_archiving_ids_that_name_nothing_answers_204(client: httpx.AsyncClient) -> None:
    [deal] = await make(client, "deals", 1)
    await post(
        client, "/crm/v3/objects/deals/batch/archive", {"inputs": [{"id": "999999"}, {"id": deal}]}, 204
    )
    assert (await client.delete("/crm/v3/objects/deals/999999")).status_code == 204
    assert (await client.delete(f"/crm/v3/objects/deals/{deal}")).status_code == 204  # archived already
    assert (await client.get("/_sandbox/dump")).json()["archived"]["deals"] == 1
