"""The writer's account set-up, done once and verified at each start, repaired when it drifts.

A full set-up (``handlers.account_setup.set_up_account``) reads every property definition and
the pipelines: seven calls on an account that holds everything, more where it writes. Its outcome,
the pipeline and its stage ids, is remembered in ``hubspot.setup`` (``handlers.setup_cache``)
under the fingerprint of what the code wants (every custom property's definition, the built-in
properties it writes, the stages, the pipeline settings; X1's mode and order pipeline). A writer
start then costs two calls (three where both deals and orders are written):

1. ``GET /account-info/v3/details``: proves the token, names the account (its portal id keys the
   cache) and gives its time zone (when the daily limit resets);
2. ``GET /crm/v3/pipelines/deals/{id}``: the remembered pipeline still has the six stages, with
   the remembered ids (where deals are written);
3. ``GET /crm/v3/pipelines/orders/{id}``: the same for the order pipeline (where orders are; the
   association type ids, HubSpot's own, are taken as remembered).

Anything else (no record, another fingerprint because the code's definitions or the pipeline
settings changed, the pipeline or a stage gone or renamed, no portal id readable) runs the full
set-up and remembers it anew. HubSpot has no call proving all four object types' properties at
once, so a property deleted in HubSpot after the set-up is found by the first write naming it:
HubSpot refuses it (``handlers.schema_drift``), and the plan runner calls :meth:`repair`, which
runs the full set-up (recreating what is missing) before the batch is sent again. Nothing is
dead-lettered for a drift the set-up can repair; one it cannot (a stage deleted where the writer
may not create it) is :class:`AccountDriftError`, which undoes the round like an outage until an
operator fixes the account.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any

import orjson

from handlers.account_setup import (
    ALL_PROPERTIES,
    BUILT_IN,
    COMMERCE_PAIRS,
    CUSTOM_PROPERTIES,
    DEALS_ONLY,
    STAGE_PROBABILITY,
    AccountDetails,
    AccountSchema,
    AccountSetupError,
    CommerceSetup,
    account_details,
    order_stage_ids,
    pipeline_schema,
    set_up_account,
)
from handlers.hubspot_api import HubSpotApi
from handlers.hubspot_client import HubSpotUnavailableError
from handlers.schema_drift import drifted
from handlers.setup_cache import SetupCache, SetupRecord, account_key
from streams.rules.commerce import ORDER_STAGES
from streams.rules.journeys import STAGES

log = logging.getLogger(__name__)

MANAGED_PROPERTIES = frozenset(p.name for props in ALL_PROPERTIES.values() for p in props)
"""The properties the set-up creates: a write refused for one missing is drift it repairs."""


class AccountDriftError(HubSpotUnavailableError):
    """The account changed under the writer and the set-up cannot repair it as it is (a stage
    deleted, a property made read-only): the round is undone, like an outage, and tried again
    later; nothing is dead-lettered. The message says what an operator has to change."""


def wanted_fingerprint(pipeline_label: str, pipeline_id: str, commerce: CommerceSetup = DEALS_ONLY) -> str:
    """A digest of everything the set-up makes or checks, as the code wants it now: a new property,
    a changed option or label, another stage or pipeline setting, another X1 mode or order pipeline
    gives another fingerprint."""
    wanted: dict[str, Any] = {
        "properties": {t: [p.payload("") for p in props] for t, props in CUSTOM_PROPERTIES.items()},
        "built_in": {t: sorted(names) for t, names in BUILT_IN.items()},
        "stages": [[stage, STAGE_PROBABILITY[stage]] for stage in STAGES],
        "pipeline": [pipeline_label, pipeline_id],
    }
    if commerce != DEALS_ONLY:  # deals mode's fingerprint stays what it was before X1
        wanted["commerce"] = [commerce.objects, commerce.order_pipeline_label, list(ORDER_STAGES),
                              [list(pair) for pair in COMMERCE_PAIRS]]  # fmt: skip
    return hashlib.sha256(orjson.dumps(wanted, option=orjson.OPT_SORT_KEYS)).hexdigest()


class SetupOnce:
    """One writer's account set-up: :meth:`start` at its start, :meth:`repair` on drift. ``cache``
    None: no memory (every start sets up in full)."""

    def __init__(
        self,
        api: HubSpotApi,
        base_url: str,
        pipeline_label: str,
        pipeline_id: str = "",
        cache: SetupCache | None = None,
        commerce: CommerceSetup = DEALS_ONLY,
    ) -> None:
        self.api = api
        self.base_url = base_url
        self.pipeline_label = pipeline_label
        self.pipeline_id = pipeline_id
        self.commerce = commerce
        self.cache = cache
        self.fingerprint = wanted_fingerprint(pipeline_label, pipeline_id, commerce)
        self.details = AccountDetails()
        self.repairs = 0

    @property
    def key(self) -> str | None:
        if self.cache is None or self.details.portal_id is None:
            return None
        return account_key(self.base_url, self.details.portal_id)

    async def start(self) -> AccountSchema:
        """The account's schema: verified from the cache when it holds this account's set-up for
        this fingerprint, else set up in full (and remembered)."""
        before = self.api.stats.requests
        self.details = await account_details(self.api)
        key = self.key
        if key is None and self.cache is not None:
            log.warning("the account's portal id could not be read: setting it up in full, not cached")
        reason = "no set-up remembered for this account"
        if key is not None and self.cache is not None and (cached := await self.cache.load(key)) is not None:
            if cached.fingerprint != self.fingerprint:
                reason = "the writer's definitions or pipeline settings changed since the last set-up"
            elif (schema := await self._verify(cached)) is not None:
                log.info(
                    "account set-up verified from %s in %d HubSpot calls (pipeline %s, %d stages)",
                    self.cache.topic, self.api.stats.requests - before, schema.pipeline_id,
                    len(schema.stage_ids),
                )  # fmt: skip
                return schema
            else:
                reason = f"the pipeline {cached.pipeline_id} or its stages changed in HubSpot"
        schema = await self._full()
        log.info(
            "account set up in %d HubSpot calls (%s); pipeline %s",
            self.api.stats.requests - before, reason, schema.pipeline_id,
        )  # fmt: skip
        return schema

    async def repair(self, refusal: dict[str, Any]) -> AccountSchema | None:
        """The plan runner's drift hook: when HubSpot's ``refusal`` of a batch names a property the
        set-up makes as missing, or a pipeline or stage id as invalid (``handlers.schema_drift``),
        the full set-up again (recreating what is missing) and its schema; else None. Raises
        :class:`AccountDriftError` when the account cannot be used as it is."""
        names = drifted(refusal, MANAGED_PROPERTIES)
        if not names:
            return None
        self.repairs += 1
        log.warning(
            "HubSpot refused a batch naming %s, which the account set-up made: setting the account up "
            "again, then sending the batch again", ", ".join(names),
        )  # fmt: skip
        try:
            return await self._full()
        except AccountSetupError as exc:
            raise AccountDriftError(
                f"the HubSpot account changed and cannot be repaired as it is: {exc}"
            ) from exc

    async def _full(self) -> AccountSchema:
        schema = await set_up_account(
            self.api, self.pipeline_label, self.pipeline_id, self.details, self.commerce
        )
        key = self.key
        if key is not None and self.cache is not None:
            record = SetupRecord(
                self.fingerprint, schema.pipeline_id, schema.stage_ids, schema.order_pipeline_id,
                schema.order_stage_ids, schema.association_types,
            )  # fmt: skip
            await self.cache.save(key, record)
        return schema

    async def _verify(self, cached: SetupRecord) -> AccountSchema | None:
        """The remembered pipelines' schema if HubSpot still has them with the remembered stage ids
        (one call each: the deal pipeline where deals are written, the order pipeline where orders
        are; X1's association type ids are HubSpot's own and taken as remembered), else None."""
        writes = self.commerce.objects.split(",")
        schema = AccountSchema(pipeline_id="", stage_ids={})
        if "deals" in writes:
            status, pipeline = await self.api.pipeline(cached.pipeline_id)
            if status != 200:
                return None
            try:
                schema = pipeline_schema(pipeline)
            except AccountSetupError:
                return None
            if schema.stage_ids != cached.stage_ids:
                return None
        if "orders" in writes:
            if not cached.order_pipeline_id or not cached.association_types:
                return None
            status, orders = await self.api.pipeline(cached.order_pipeline_id, "orders")
            if status != 200 or order_stage_ids(orders) != cached.order_stage_ids:
                return None
            schema = replace(
                schema, order_pipeline_id=cached.order_pipeline_id, order_stage_ids=cached.order_stage_ids,
                association_types=cached.association_types,
            )  # fmt: skip
        return replace(schema, time_zone=self.details.time_zone, utc_offset_ms=self.details.utc_offset_ms)
