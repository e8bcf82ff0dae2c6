"""Every Kafka topic the project owns: name, key, partitions, retention and compaction, in one place.

``shopsync topics`` creates them idempotently from this table (an existing topic is left as it
is, except that a ``max.message.bytes`` below the configured record size is raised to it; running
it twice changes nothing). The Shopify topics are the source of truth, so they keep their records
forever: replaying them rebuilds every table and every HubSpot write.

Every topic takes records up to ``Settings.kafka_message_bytes()`` (R6: one setting,
``SHOPSYNC_MAX_RECORD_BYTES``, sizes the topics, the producers and the bridge's body limit alike).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.admin import DescribeConfigsRequest

from config import Settings
from schemas.envelope import BODY_MODELS
from schemas.types import gid_number
from streams.shredding import KEY_TOPIC, KEY_TOPIC_CONFIGS

FOREVER = -1
DAY_MS = 24 * 60 * 60 * 1000
COMPLIANCE_RETENTION_MS = 90 * DAY_MS

TopicName = Literal[
    "shopify.customers",
    "shopify.orders",
    "shopify.checkouts",
    "shopify.carts",
    "shopify.products",
    "shopify.companies",
    "shopify.deadletter",
    "shopify.field-problems",
    "shopify.parking",
    "shopify.compliance",
    "hubspot.events",
    "hubspot.commands",
    "hubspot.commands.dlq",
    "hubspot.ids",
    "hubspot.setup",
]


ROUTED_TOPICS: tuple[TopicName, ...] = (
    "shopify.customers",
    "shopify.orders",
    "shopify.checkouts",
    "shopify.carts",
    "shopify.companies",
    "hubspot.events",
)
CONSUMED_TOPICS: tuple[TopicName, ...] = (*ROUTED_TOPICS, "shopify.products", "hubspot.ids")
"""The Shopify/HubSpot topics the worker's agents read (its consumer group's lag is measured on
these and on the internal topics)."""


@dataclass(frozen=True)
class TopicSpec:
    """A topic's declaration. ``key`` says what its records are keyed by (for people and tests)."""

    name: TopicName
    key: str
    description: str
    retention_ms: int = FOREVER
    compacted: bool = False
    partitions: int | None = None  # None: the configured default

    def configs(self, settings: Settings) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms)}
        cfg["cleanup.policy"] = "compact" if self.compacted else "delete"
        cfg.update(size_configs(settings))
        return cfg


def size_configs(settings: Settings) -> dict[str, str]:
    """The topic config that lets a topic hold every record the producers may send (R6); faust's
    changelog topics get it too (``Table(extra_topic_configs=...)``)."""
    return {"max.message.bytes": str(settings.kafka_message_bytes())}


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "shopify.customers", "customer id", "customers/* deliveries and import records, and "
        "company_contacts/* deliveries (X2) keyed by their customer's id",
    ),
    TopicSpec("shopify.orders", "order id", "orders/* deliveries and import records"),
    TopicSpec("shopify.checkouts", "checkout token", "checkouts/* deliveries and import records"),
    TopicSpec("shopify.carts", "cart token", "carts/* deliveries"),
    TopicSpec("shopify.products", "product id", "products/* deliveries and import records"),
    TopicSpec(
        "shopify.companies", "company id", "companies/* and company_locations/* deliveries (X2), "
        "a location keyed by its company_id so one company's records stay in order",
    ),
    TopicSpec(
        "shopify.deadletter", "source key", "input records that failed validation, with the "
        "reason and the original bytes", retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        "shopify.field-problems", "source key", "fields that did not fit their type and were synced "
        "as absent (R1): Shopify topic, record key, field path and reason, never the value",
        retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        "shopify.parking", "event id", "signed deliveries the product does not consume (unknown topic, "
        "no id), with the reason, kept so nothing Shopify sent is lost", retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        "shopify.compliance", "shop domain", "Shopify's compliance webhooks (G1: customers/data_request, "
        "customers/redact, shop/redact), one record each, the customer's email and phone as pseudonyms "
        "(keyed hashes) only; one shop's requests in order on one partition; not compacted (every "
        "request is an obligation, and compaction by shop would keep only the last); kept 90 days: "
        "Shopify's 30 days to act, and two months more to show what was asked and done",
        retention_ms=COMPLIANCE_RETENTION_MS,
    ),
    TopicSpec("hubspot.events", "HubSpot object id", "HubSpot webhooks (contact.deletion, C4)"),
    TopicSpec(
        "hubspot.commands", "object type and natural key", "idempotent HubSpot commands for the "
        "writer", retention_ms=7 * DAY_MS,
    ),
    TopicSpec(
        "hubspot.commands.dlq", "object type and natural key", "commands HubSpot rejected for "
        "good, with HubSpot's message", retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        "hubspot.ids", "object type and natural key", "the writer's natural-key to HubSpot-id "
        "map", compacted=True,
    ),
    TopicSpec(
        "hubspot.setup", "HubSpot API base URL and portal id", "the writer's last completed account "
        "set-up per HubSpot account (pipeline, stage ids, fingerprint of the wanted definitions), so a "
        "restart on a configured account verifies it instead of setting it up again",
        compacted=True, partitions=1,
    ),
)  # fmt: skip

SHOPIFY_RESOURCE_TOPICS: dict[str, TopicName] = {
    "customers": "shopify.customers",
    "orders": "shopify.orders",
    "checkouts": "shopify.checkouts",
    "carts": "shopify.carts",
    "products": "shopify.products",
    "companies": "shopify.companies",  # X2: B2B companies and their locations, keyed by company
    "company_locations": "shopify.companies",
    "company_contacts": "shopify.customers",  # X2: keyed by its customer, whose email it needs
}
"""Which topic a Shopify resource's deliveries (``<resource>/<action>``) are appended to."""


InternalName = Literal["contacts", "journeys", "hubspot-objects", "reports", "companies", "company-members"]
INTERNAL_TOPICS: dict[InternalName, str] = {
    "contacts": "deliveries re-keyed by contact email, HubSpot deletions, and ticks",
    "journeys": "deliveries re-keyed by purchase journey, first-purchase facts, and ticks",
    "hubspot-objects": "HubSpot contact deletions and the writer's contact ids, re-keyed by HubSpot "
    "object id so each deletion meets its contact's email (C4, R5)",
    "reports": "each journey's deal facts for the ecommerce reports (E1), keyed by journey",
    "companies": "company deliveries, B2B orders and company-member facts re-keyed by Shopify company "
    "id (X2)",
    "company-members": "customers/* and company_contacts/* deliveries re-keyed by Shopify customer id, "
    "so a company contact meets its customer's email (X2)",
}
TABLES: dict[str, str] = {
    "order-journeys": "what the orders router remembers of each order id (its journey and email)",
    "hubspot-objects": "each HubSpot contact id's email, and deletions waiting for it",
    "contacts": "contact states, and each partition's clock row",
    "journeys": "purchase journey states, and each partition's clock row",
    "products": "product states",
    "reports": "each journey's newest deal facts (E1; the dashboard folds its changelog)",
    "companies": "B2B company states: the company, its locations, its orders' journeys and emails, "
    "its company contacts' emails (X2)",
    "company-members": "each customer's company contacts (company and delete marks) and newest email (X2)",
}
"""The worker's tables; each is changelogged to ``<app id>-<table>-changelog`` (compacted)."""


def changelog_topic(settings: Settings, table: str) -> str:
    """faust's name for a table's changelog topic."""
    return f"{settings.app_id}-{table}-changelog"


TIMER_TOPICS: tuple[InternalName, ...] = ("contacts", "journeys")
"""The internal topics whose entities hold timers: the ones ticks are appended to."""
INTERNAL_RETENTION_MS = 14 * DAY_MS


def internal_topic(settings: Settings, name: InternalName) -> str:
    """A worker-internal re-keyed topic. Scoped by the app id, so a rebuild under a fresh app id
    (replay) derives its own and never mixes with the live worker's."""
    return f"{settings.topic_prefix}{settings.app_id}.{name}"


def topic_name(settings: Settings, name: TopicName) -> str:
    """The topic's name in Kafka: the configured prefix plus its declared name."""
    return f"{settings.topic_prefix}{name}"


def key_topic(settings: Settings) -> str:
    """G1's key topic (``streams.shredding.KEY_TOPIC``), under the configured prefix. Made by
    :func:`ensure_topics` only while ``SHOPSYNC_SEAL_PERSONAL_DATA`` is on, with
    ``KEY_TOPIC_CONFIGS`` (compacted, so a redacted key leaves the logs within days)."""
    return f"{settings.topic_prefix}{KEY_TOPIC}"


def spec(name: TopicName) -> TopicSpec:
    return next(t for t in TOPICS if t.name == name)


async def ensure_topics(
    settings: Settings, timeout_s: float = 30.0, internal: bool = False
) -> dict[str, bool]:
    """Create every declared topic that does not exist yet; return {name: created}.

    ``internal`` adds the worker's re-keyed topics and its tables' changelogs for ``settings.app_id``.
    """
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        result: dict[str, bool] = {}
        wanted = []
        declared = [(topic_name(settings, t.name), t.partitions, t.configs(settings)) for t in TOPICS]
        if settings.seal_personal_data:  # G1: the data keys the bridge and importers seal with
            declared.append((key_topic(settings), None, {**KEY_TOPIC_CONFIGS, **size_configs(settings)}))
        if internal:
            internal_cfg = {"retention.ms": str(INTERNAL_RETENTION_MS), "cleanup.policy": "delete"}
            internal_cfg.update(size_configs(settings))
            declared += [(internal_topic(settings, n), None, internal_cfg) for n in INTERNAL_TOPICS]
            # The changelogs too, before faust starts: two workers of a new app id starting at
            # once both have faust create them, and the loser exits (PartitionsMismatch).
            changelog_cfg = {"cleanup.policy": "compact", **size_configs(settings)}
            declared += [(changelog_topic(settings, t), None, changelog_cfg) for t in TABLES]
        for full, partitions, configs in declared:
            result[full] = full not in existing
            if full not in existing:
                wanted.append(
                    NewTopic(
                        name=full,
                        num_partitions=partitions or settings.partitions,
                        replication_factor=settings.replication_factor,
                        topic_configs=configs,
                    )
                )
        if wanted:
            response = await admin.create_topics(wanted)
            for name, code, message in response.topic_errors:
                if code == TopicAlreadyExistsError.errno:
                    result[name] = False  # a concurrent creator won the race: that is success
                elif code:
                    raise for_code(code)(f"could not create topic {name}: {message}")
        await _wait_until_listed(admin, [n.name for n in wanted], timeout_s)
        await _raise_size_limits(
            admin, [name for name, *_ in declared if name in existing], settings, timeout_s
        )
        return result
    finally:
        await admin.close()


async def _raise_size_limits(
    admin: AIOKafkaAdminClient, names: list[str], settings: Settings, timeout_s: float
) -> None:
    """Raise ``max.message.bytes`` of existing topics that are below the configured record size
    (topics made by an older version, or before the setting grew), so a record the bridge accepts
    is never refused by a later topic. Kafka's AlterConfigs replaces a topic's whole dynamic config,
    so the topic's other overrides (retention, cleanup policy) are sent along unchanged."""
    if not names:
        return
    wanted = settings.kafka_message_bytes()
    described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    changes = []
    for response in described:
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            current = {e[0]: e[1] for e in entries}
            if int(current.get("max.message.bytes") or 0) >= wanted:
                continue
            overrides = {e[0]: e[1] for e in entries if e[3] == _DYNAMIC_TOPIC_CONFIG and e[1] is not None}
            overrides["max.message.bytes"] = str(wanted)
            changes.append(ConfigResource(ConfigResourceType.TOPIC, name, configs=overrides))
    if not changes:
        return
    for response in await admin.alter_configs(changes):
        for code, message, _type, name in response.resources:
            if code:
                raise for_code(code)(f"could not raise max.message.bytes of {name}: {message}")
    await _wait_until_applied(admin, [c.name for c in changes], wanted, timeout_s)


async def _wait_until_applied(
    admin: AIOKafkaAdminClient, names: list[str], wanted: int, timeout_s: float
) -> None:
    """Wait until every broker reports the raised ``max.message.bytes`` of every topic.

    AlterConfigs returns once the controller has committed the change; each broker applies it when
    it replays the metadata log, a moment later. A caller that produces a large record right after
    ``ensure_topics`` returned met the old limit there (a 413 from the bridge, found by a clean-clone
    CI run). Every broker is asked, because the one a record goes to is its partition's leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    brokers = [b.nodeId for b in admin._client.cluster.brokers()]
    request = DescribeConfigsRequest(
        resources=[(ConfigResourceType.TOPIC.value, n, ["max.message.bytes"]) for n in names]
    )
    while True:
        lagging = set()
        for broker in brokers:
            response = await admin._send_request_to_node(broker, request)
            for _code, _message, _type, name, entries in response.resources:
                if int({e[0]: e[1] for e in entries}.get("max.message.bytes") or 0) < wanted:
                    lagging.add(name)
        if not lagging:
            return
        if loop.time() > deadline:
            raise TimeoutError(
                f"max.message.bytes not raised on every broker after {timeout_s} s: {sorted(lagging)}"
            )
        await asyncio.sleep(0.05)


_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config_source for a topic-level override


async def _wait_until_listed(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """Wait until every new topic is listed and each partition has a leader, so the first
    producer does not meet NotLeaderForPartition."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while names:
        listed = set(await admin.list_topics())
        ready = set()
        visible = [n for n in names if n in listed]
        if visible:
            for topic in await admin.describe_topics(visible):
                parts = topic.get("partitions") or []
                if parts and all(p.get("leader", -1) >= 0 for p in parts):
                    ready.add(topic["topic"])
        names = [n for n in names if n not in ready]
        if not names:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"topics not ready after {timeout_s} s: {names}")
        await asyncio.sleep(0.1)


class UnroutableError(ValueError):
    """A delivery whose topic the product does not consume, or whose body has no key."""


NOT_RECORDS = {
    "orders/edited": "its body is the edit ({order_edit: additions, removals}), not the order",
    "orders/risk_assessment_changed": "its body is a risk assessment of the order, not the order",
    "orders/shopify_protect_eligibility_changed": "its body is a Shopify Protect status, not the order",
}
"""Topics of a consumed resource whose body is not a full record: parked with this reason (the
order they concern arrives whole as ``orders/updated``)."""


def route(shopify_topic: str, body: dict[str, object], prefix: str = "") -> tuple[TopicName, bytes]:
    """Where a Shopify delivery is appended, and its Kafka key (the record's identity).

    Checkouts are keyed by token (their id is absent from the webhook), carts by token, the rest
    by id, so every version of one record lands on one partition, in order. X3: ``prefix`` is the
    shop's key prefix (``RuleConfig.key_prefix``: empty for the primary shop), so one shop's
    record keeps its partition and never shares a key with another shop's. A topic without a
    model in ``BODY_MODELS`` (its body is not a full record, or nothing reads it) is unroutable:
    the bridge parks it.
    """
    resource = shopify_topic.partition("/")[0]
    name = SHOPIFY_RESOURCE_TOPICS.get(resource)
    if name is None or shopify_topic not in BODY_MODELS:
        why = NOT_RECORDS.get(shopify_topic, "not a topic the product consumes")
        raise UnroutableError(f"unsupported Shopify topic {shopify_topic!r}: {why}")
    ident = body.get("token") if resource in ("checkouts", "carts") else body.get("id")
    if resource == "companies" and ident in (None, ""):  # Shopify's payload: the global id only (X2)
        ident = gid_number(_text_or_none(body.get("admin_graphql_api_id")))
    if resource == "company_locations":  # a location is its company's record (X2)
        ident = body.get("company_id")
        nested = body.get("company")
        if ident in (None, "") and isinstance(nested, dict):
            ident = nested.get("id") or gid_number(_text_or_none(nested.get("admin_graphql_api_id")))
    if resource == "company_contacts":  # a company contact joins its customer's records (X2)
        ident = gid_number(_text_or_none(body.get("customer_admin_graphql_api_id")))
        if ident is None:
            raise UnroutableError(f"{shopify_topic} body names no customer (customer_admin_graphql_api_id)")
    ident = ident if ident not in (None, "") else body.get("id")
    if ident in (None, ""):
        raise UnroutableError(f"{shopify_topic} body has no id or token")
    return name, f"{prefix}{ident}".encode()


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def is_size_error(exc: BaseException) -> bool:
    """Whether a send failed because the record is too large for a producer or a topic (R6):
    not a passing fault of Kafka, so retrying cannot help and the record is dead-lettered instead.
    faust wraps the producer's own refusal in ``ProducerSendError``, hence the look at the cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MessageSizeTooLargeError | RecordTooLargeError):
            return True
        seen = seen.__cause__
    return False
