"""The HubSpot CRM endpoints the writer and the account set-up use, as typed calls.

Each method builds its path (``handlers.hubspot_paths``) and its body from typed inputs, in the
shape HubSpot documents for that endpoint, and returns HubSpot's answer as an ``Answer``. Pacing,
retries and the classification of failures are the transport's (``HubSpotClient``, over httpx):
a permanent 4xx raises ``HubSpotError`` (404 and 409 are answers), an unusable HubSpot raises
``HubSpotUnavailableError`` and its kinds. What an answer means for each input is
``handlers.batch_answers``'s to say, not this module's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from handlers import hubspot_paths as paths
from handlers.hubspot_client import CallStats, HubSpotClient

MAX_INPUTS = 100
"""HubSpot's limit on the inputs of one batch call (objects and associations alike)."""


class Answer(NamedTuple):
    """HubSpot's status code and parsed body (``{}`` for an empty one); unpacks as a pair."""

    status: int
    body: dict[str, Any]

    @property
    def failed(self) -> bool:
        return self.status >= 400

    def results(self) -> list[dict[str, Any]]:
        """The ``results`` that are objects (a malformed entry is skipped, never trusted)."""
        return [r for r in self.body.get("results") or [] if isinstance(r, dict)]


@dataclass(frozen=True)
class RecordInput:
    """One input of ``batch/upsert`` or ``batch/update`` by a unique property."""

    id_value: str
    id_property: str
    properties: Mapping[str, str]

    def json(self) -> dict[str, Any]:
        return {"id": self.id_value, "idProperty": self.id_property, "properties": dict(self.properties)}


@dataclass(frozen=True)
class LinkInput:
    """One association between two HubSpot ids; ``type_id`` names a HubSpot-defined type."""

    from_id: str
    to_id: str
    type_id: int


def _inputs(items: Sequence[Any]) -> None:
    if not items or len(items) > MAX_INPUTS:
        raise ValueError(f"a batch takes 1 to {MAX_INPUTS} inputs, not {len(items)}")


class HubSpotApi:
    """One account's CRM, typed. ``client`` is the paced, retrying transport."""

    def __init__(self, client: HubSpotClient) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"HubSpotApi({self.client!r})"

    @property
    def stats(self) -> CallStats:
        return self.client.stats

    async def close(self) -> None:
        await self.client.close()

    async def _post(self, path: str, body: Any) -> Answer:
        status, answer = await self.client.call("POST", path, body)
        return Answer(status, answer)

    async def _get(self, path: str) -> Answer:
        status, answer = await self.client.call("GET", path)
        return Answer(status, answer)

    # ---- records ----

    async def archive(self, object_type: str, hubspot_ids: Sequence[str]) -> Answer:
        """``batch/archive``: HubSpot answers 204, also for ids it does not hold."""
        _inputs(hubspot_ids)
        body = {"inputs": [{"id": i} for i in hubspot_ids]}
        return await self._post(paths.batch(object_type, "archive"), body)

    async def upsert(self, object_type: str, inputs: Sequence[RecordInput], *, create: bool) -> Answer:
        """``batch/upsert`` (creates what is missing) or, with ``create`` false, ``batch/update``
        by the unique property (a missing record is an error of that input, never created)."""
        _inputs(inputs)
        path = paths.batch(object_type, "upsert") if create else paths.batch(object_type, "update")
        return await self._post(path, {"inputs": [i.json() for i in inputs]})

    async def read(self, object_type: str, id_property: str, values: Sequence[str]) -> Answer:
        """``batch/read`` by a unique property, returning that property (to match answers to inputs)."""
        _inputs(values)
        body = {"inputs": [{"id": v} for v in values], "idProperty": id_property, "properties": [id_property]}
        return await self._post(paths.batch(object_type, "read"), body)

    # ---- associations (v4) ----

    async def link(self, from_type: str, to_type: str, inputs: Sequence[LinkInput]) -> Answer:
        """``batch/create`` of HubSpot-defined (unlabelled) associations."""
        _inputs(inputs)
        body = [
            {"from": {"id": i.from_id}, "to": {"id": i.to_id},
             "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": i.type_id}]}
            for i in inputs
        ]  # fmt: skip
        return await self._post(paths.association_batch(from_type, to_type, "create"), {"inputs": body})

    async def unlink(self, from_type: str, to_type: str, inputs: Sequence[LinkInput]) -> Answer:
        """``batch/archive``: removes every association between each pair."""
        _inputs(inputs)
        body = [{"from": {"id": i.from_id}, "to": [{"id": i.to_id}]} for i in inputs]
        return await self._post(paths.association_batch(from_type, to_type, "archive"), {"inputs": body})

    # ---- the account's schema ----

    async def properties(self, object_type: str) -> list[dict[str, Any]]:
        """Every property definition of the type (HubSpot's and custom ones)."""
        return [p for p in (await self._get(paths.properties(object_type))).results() if p.get("name")]

    async def create_property(self, object_type: str, definition: Mapping[str, Any]) -> Answer:
        return await self._post(paths.properties(object_type), dict(definition))

    async def create_properties(self, object_type: str, definitions: Sequence[Mapping[str, Any]]) -> Answer:
        """``properties/{type}/batch/create``: "the same rules as when creating an individual
        property" (HubSpot's properties reference), one call for up to 100 of them."""
        _inputs(definitions)
        body = {"inputs": [dict(d) for d in definitions]}
        return await self._post(paths.property_batch(object_type, "create"), body)

    async def update_property(self, object_type: str, name: str, changes: Mapping[str, Any]) -> Answer:
        """``PATCH``: a partial update, only the fields sent are overwritten."""
        status, answer = await self.client.call(
            "PATCH", paths.property_named(object_type, name), dict(changes)
        )
        return Answer(status, answer)

    async def pipelines(self, object_type: str = "deals") -> list[dict[str, Any]]:
        """The type's pipelines with their stages."""
        return (await self._get(paths.pipelines(object_type))).results()

    async def pipeline(self, pipeline_id: str, object_type: str = "deals") -> Answer:
        """One pipeline (404: the account has no pipeline with that id)."""
        return await self._get(paths.pipeline(pipeline_id, object_type))

    async def create_pipeline(self, definition: Mapping[str, Any], object_type: str = "deals") -> Answer:
        return await self._post(paths.pipelines(object_type), dict(definition))

    async def add_stage(
        self, pipeline_id: str, stage: Mapping[str, Any], object_type: str = "deals"
    ) -> Answer:
        return await self._post(paths.pipeline_stages(pipeline_id, object_type), dict(stage))

    async def association_types(self, from_type: str, to_type: str) -> list[dict[str, Any]]:
        """The pair's association types (``category``, ``typeId``, ``label``; X1's set-up)."""
        return (await self._get(paths.association_labels(from_type, to_type))).results()

    # ---- communication preferences (X4) ----

    async def subscription_definitions(self) -> list[dict[str, Any]]:
        """The account's subscription types (``id`` as text, ``name``, ...)."""
        return (await self._get(paths.subscription_definitions())).results()

    async def subscription_statuses(self, addresses: Sequence[str]) -> Answer:
        """Each address's status for every subscription type (``results[].statuses``)."""
        _inputs(addresses)
        return await self._post(paths.subscription_statuses("read"), {"inputs": list(addresses)})

    async def opted_out_of_all(self, addresses: Sequence[str]) -> Answer:
        """Each address's opt-out of all email (``results[].wideStatuses``, empty when none)."""
        _inputs(addresses)
        return await self._post(paths.opt_outs_of_all(), {"inputs": list(addresses)})

    async def set_subscription_statuses(self, inputs: Sequence[Mapping[str, Any]]) -> Answer:
        """``statuses/batch/write``: each input names an address, a type, a state and a legal basis."""
        _inputs(inputs)
        return await self._post(paths.subscription_statuses("write"), {"inputs": [dict(i) for i in inputs]})

    async def account_details(self) -> Answer:
        return await self._get(paths.ACCOUNT_DETAILS)
