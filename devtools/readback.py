"""Reading a HubSpot account back through HubSpot's standard CRM endpoints, in the sandbox's dump
shape, so ``simulate --hubspot-url`` checks a real account (or a sandbox elsewhere) the same way.

Reads the object types the product manages (with the properties it writes), the deal pipelines
(to show stage and pipeline labels), and each deal's associations to contacts and line items.
"""

from __future__ import annotations

from typing import Any

from handlers import hubspot_paths as paths
from handlers.account_setup import BUILT_IN, CUSTOM_PROPERTIES
from handlers.hubspot_client import HubSpotClient

OBJECT_TYPES = ("contacts", "deals", "products", "line_items")
DEAL_LINKS = {"contacts": 3, "line_items": 19}


async def _list(client: HubSpotClient, object_type: str) -> list[dict[str, Any]]:
    names = sorted(BUILT_IN[object_type] | {p.name for p in CUSTOM_PROPERTIES[object_type]})  # type: ignore[index]
    out: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        path = f"{paths.objects(object_type)}?limit=100&properties={','.join(names)}"
        _, body = await client.call("GET", path + (f"&after={after}" if after else ""))
        for result in body.get("results", []):
            props = {k: v for k, v in (result.get("properties") or {}).items() if v not in (None, "")}
            out.append({"id": str(result["id"]), "properties": props})
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return sorted(out, key=lambda r: int(r["id"]) if r["id"].isdigit() else r["id"])


async def read_back(client: HubSpotClient) -> dict[str, Any]:
    """The account as {"contacts", "deals" (with stage and pipeline labels), "products",
    "line_items", "associations", "pipelines"}."""
    _, pipelines = await client.call("GET", paths.pipelines("deals"))
    stage_labels = {
        str(s["id"]): s["label"] for p in pipelines.get("results", []) for s in p.get("stages", [])
    }
    pipeline_labels = {str(p["id"]): p["label"] for p in pipelines.get("results", [])}
    account: dict[str, Any] = {t: await _list(client, t) for t in OBJECT_TYPES}
    for deal in account["deals"]:
        deal["stage_label"] = stage_labels.get(str(deal["properties"].get("dealstage")))
        deal["pipeline_label"] = pipeline_labels.get(str(deal["properties"].get("pipeline")))
    links = []
    for deal in account["deals"]:
        for to_type, type_id in DEAL_LINKS.items():
            _, body = await client.call("GET", paths.record_associations("deals", deal["id"], to_type))
            for result in body.get("results", []):
                types = {t.get("typeId") for t in result.get("associationTypes", [])}
                if type_id in types or not types:
                    links.append({"from_type": "deals", "from_id": deal["id"], "to_type": to_type,
                                  "to_id": str(result["toObjectId"]), "type_id": type_id})  # fmt: skip
                    if to_type == "line_items":  # also as the writer states it: line item -> deal
                        links.append({"from_type": "line_items", "from_id": str(result["toObjectId"]),
                                      "to_type": "deals", "to_id": deal["id"], "type_id": 20})  # fmt: skip
    account["associations"] = links
    account["pipelines"] = pipelines.get("results", [])
    return account
