"""Every HubSpot rule the sandbox enforces, with what it answers and where HubSpot documents it.

RULES.md is this table in Markdown (``markdown_table()``; a test keeps the two equal), and
``GET /_sandbox/rules`` serves it beside the contract, so a test or a person can see why a request
was refused. ``answer`` says whether HubSpot's status, category and wording are documented or
captured (``documented``) or only the rule is and the answer is the sandbox's reading
(``inferred``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from hubspot_sandbox.errors import JSON

USAGE = "https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines"
PIPELINES = "https://developers.hubspot.com/docs/api/crm/pipelines"
STAGES = (
    "https://developers.hubspot.com/docs/api-reference/crm-pipelines-v3/pipeline-stages/"
    "post-crm-v3-pipelines-objectType-pipelineId-stages"
)
PROPERTIES = "https://developers.hubspot.com/docs/api/crm/properties"
LINE_ITEMS = "https://developers.hubspot.com/docs/api/crm/line-items"
LINE_ITEM_PROPERTIES = "https://knowledge.hubspot.com/properties/hubspots-default-line-item-properties"
SEARCH = "https://developers.hubspot.com/docs/api-reference/search/guide#limitations"
LABELS = (
    "https://developers.hubspot.com/docs/api-reference/crm-associations-schema-v4/definitions/"
    "post-crm-associations-v4-fromObjectType-toObjectType-labels"
)
ASSOCIATE_DEFAULT = (
    "https://developers.hubspot.com/docs/api-reference/latest/crm/associations/associate-records/batch/"
    "create-associations"
)
ARCHIVE = (
    "https://developers.hubspot.com/docs/api-reference/latest/crm/objects/custom-objects/batch/"
    "delete-custom-objects"
)
READ_ONLY_CAPTURE = "https://github.com/mautic/mautic/pull/8785"
OPTION_INPUT = "https://github.com/HubSpot/hubspot-api-python (hubspot/crm/properties/models/option_input.py)"
SEARCH_HEADERS = (
    "https://community.hubspot.com/t5/Developer-Announcements/"
    "Rate-limit-headers-will-now-appear-for-OAuth-authenticated-calls/m-p/399520"
)
ORDERS = "https://developers.hubspot.com/docs/api/commerce/orders"
CARTS = "https://developers.hubspot.com/docs/api/commerce/carts"
ORDER_DEFINITION = (
    "https://developers.hubspot.com/docs/api-reference/2026-03/crm/objects/orders/object-definition"
)
ASSOCIATION_IDS = (
    "https://developers.hubspot.com/docs/api-reference/latest/crm/associations/association-details"
    " (association type id values)"
)
SUBSCRIPTION_STATUS = "https://developers.hubspot.com/docs/api-reference/latest/communication-preferences/status/update-subscription"
SUBSCRIPTION_SPEC = (
    "https://github.com/api-evangelist/hubspot (openapi/_original/"
    "hubspot-communication-preferences-subscriptions-openapi.json: PartialPublicStatusRequest, PublicStatus)"
)
SUBSCRIBE_V3 = (
    "https://developers.hubspot.com/docs/api-reference/communication-preferences-subscriptions-v3/status/"
    "post-communication-preferences-v3-subscribe"
)
SUBSCRIPTIONS_GUIDE = (
    "https://developers.hubspot.com/docs/api-reference/legacy/communication-preferences/v3/guide"
)
LINE_ITEM_MATH = "https://help.hubdo.com/how-does-hubspot-calculate-and-round-line-item-net-price-when-discounted-by-percentage"


@dataclass(frozen=True)
class Rule:
    id: str
    rule: str  # what HubSpot refuses or does
    answer: str  # what the sandbox answers
    basis: Literal["documented", "inferred"]  # of the answer; the rule itself is always sourced
    sources: tuple[str, ...]
    where: str  # the sandbox module that enforces it


RULES: tuple[Rule, ...] = (
    Rule(
        "tier-rate-limits",
        "Private-app limits per tier: Free and Starter 100 per 10 s and 250,000 a day; Professional 190"
        " and 625,000; Enterprise 190 and 1,000,000 (the daily count resets at the account's midnight)",
        "429, errorType RATE_LIMIT, policyName TEN_SECONDLY_ROLLING or DAILY, Retry-After on the first",
        "documented",
        (USAGE, "https://developers.hubspot.com/docs/apps/legacy-apps/private-apps/overview"),
        "tiers.py, ratelimit.py",
    ),
    Rule(
        "search-rate-limit",
        "Search endpoints take 5 requests a second per account (and count against the other limits)",
        "429, errorType RATE_LIMIT, policyName SECONDLY, Retry-After 1",
        "inferred",
        (SEARCH, "https://github.com/activepieces/activepieces/pull/10160 (quotes the guide)"),
        "ratelimit.py",
    ),
    Rule(
        "search-no-rate-headers",
        "Search answers carry no X-HubSpot-RateLimit-* headers",
        "no rate-limit headers on POST /crm/v3/objects/{type}/search",
        "documented",
        (USAGE + " (headers table: exceptions)", SEARCH_HEADERS),
        "middleware.py",
    ),
    Rule(
        "free-no-new-pipelines",
        "Only Starter, Professional and Enterprise accounts create pipelines; Free keeps the default one",
        "400 VALIDATION_ERROR on POST /crm/v3/pipelines/deals with tier free",
        "inferred",
        (PIPELINES,),
        "pipelines.py",
    ),
    Rule(
        "stages-on-every-tier",
        "Every tier edits its pipelines' stages (only additional pipelines need Starter or above)",
        "201 on POST /crm/v3/pipelines/deals/{pipelineId}/stages with tier free, under the stage rules",
        "documented",
        (
            "https://knowledge.hubspot.com/object-settings/set-up-and-customize-your-deal-pipelines-and-deal-stages",
            STAGES,
        ),
        "pipelines.py",
    ),
    Rule(
        "default-pipeline",
        'Every account has the deal pipeline "default" ("Sales Pipeline") with HubSpot\'s seven stages'
        " (appointmentscheduled 0.2 ... contractsent 0.9, closedwon 1.0, closedlost 0.0)",
        "GET /crm/v3/pipelines/deals lists it from the start",
        "documented",
        (PIPELINES, "https://developers.hubspot.com/docs/methods/pipelines/pipelines_overview"),
        "catalog.py, pipelines.py",
    ),
    Rule(
        "stage-probability",
        "A deal stage needs metadata.probability between 0.0 and 1.0 in increments of 0.1",
        "400 VALIDATION_ERROR",
        "inferred",
        (STAGES, PIPELINES),
        "pipelines.py",
    ),
    Rule(
        "stage-closed",
        "0.0 is Closed Lost and 1.0 Closed Won: those stages are closed, the others open",
        "isClosed derived from the probability; a contradicting isClosed is 400 VALIDATION_ERROR",
        "inferred",
        (PIPELINES,),
        "pipelines.py",
    ),
    Rule(
        "stage-label-unique",
        "A stage label must be unique within its pipeline",
        "400 VALIDATION_ERROR",
        "inferred",
        (PIPELINES, STAGES),
        "pipelines.py",
    ),
    Rule(
        "read-only-values",
        "Properties HubSpot sets (hs_object_id, createdate, lastmodifieddate, hs_lastmodifieddate) and"
        " calculated ones cannot be written: batch create/update/upsert, POST and PATCH alike",
        '400 VALIDATION_ERROR, code READ_ONLY_VALUE, "\\"<p>\\" is a calculated property; its value'
        ' cannot be set."',
        "documented",
        (READ_ONLY_CAPTURE, LINE_ITEM_PROPERTIES),
        "catalog.py, checks.py",
    ),
    Rule(
        "line-item-calculated",
        "On line items hs_pre_discount_amount, hs_total_discount and amount (net price) are calculated"
        " from price, quantity and discount or hs_discount_percentage",
        "refused on write (read-only-values); kept up to date on every write",
        "documented",
        (LINE_ITEM_PROPERTIES, LINE_ITEM_MATH),
        "catalog.py, calculated_values.py",
    ),
    Rule(
        "line-item-price-not-negative",
        "A line item's price cannot be negative",
        "400 VALIDATION_ERROR, errors[].context.propertyName [price]",
        "inferred",
        (LINE_ITEMS,),
        "checks.py",
    ),
    Rule(
        "line-item-one-parent",
        "Line items belong to one single parent object (a deal, an order or a cart: one set of line items"
        " per object): a line item already on one cannot join another",
        "v4 batch/create and batch/associate/default: that input fails (207, VALIDATION_ERROR);"
        " a create with associations to two parents: 400 VALIDATION_ERROR",
        "inferred",
        (LINE_ITEMS,),
        "associations.py, writes.py",
    ),
    Rule(
        "commerce-object-types",
        "Orders (path order, type id 0-123), carts (cart, 0-142) and companies (companies, 0-2) are CRM"
        " objects with batch create/read/update/upsert/archive and search, and custom properties",
        "/crm/v3/objects/{order|orders|0-123|cart|carts|0-142|companies|company|0-2}/... as for deals",
        "documented",
        (ORDERS, CARTS, ORDER_DEFINITION),
        "catalog.py",
    ),
    Rule(
        "commerce-properties",
        "Orders have hs_order_name, hs_currency_code, hs_source_store, hs_external_order_id, hs_pipeline,"
        " hs_pipeline_stage, hs_total_price, hs_subtotal_price, hs_tax, hs_shipping_cost, hs_order_discount,"
        " hs_fulfillment_status, hs_payment_status, hs_external_created_date, hs_external_cancelled_date,"
        " hs_cancellation_reason, shipping and billing addresses; carts hs_cart_name, hs_external_cart_id,"
        " hs_external_status, hs_source_store, hs_total_price, hs_currency_code, hs_cart_discount, hs_tax,"
        " hs_shipping_cost, hs_tags. Their creation stamp is hs_createdate; hs_exchange_rate,"
        " hs_homecurrency_amount, hs_created_by_user_id and hs_object_source are set by HubSpot",
        "the properties exist (others: 400 PROPERTY_DOESNT_EXIST); the set ones are refused on write"
        " (read-only-values); none is unique, so upserting by hs_external_order_id needs a custom unique"
        " property (HubSpot-defined properties carry hasUniqueValue false)",
        "inferred",
        (ORDERS, CARTS, ORDER_DEFINITION),
        "catalog.py, checks.py",
    ),
    Rule(
        "order-pipeline",
        'Every account has the order pipeline "Order Pipeline" (14a2e10e-5471-408a-906e-c51f3b04369e)'
        " with stages Open, Processed, Shipped, Delivered, Cancelled; pipelines exist for deals and"
        " orders (and tickets and others the sandbox lacks), not for carts, contacts or companies;"
        " order stages need no metadata",
        "GET /crm/v3/pipelines/orders lists it; pipelines of other types: 400 VALIDATION_ERROR",
        "inferred",
        (
            PIPELINES,
            ORDERS + " (Pipelines and stages)",
            "the ids: public integrations that read GET /crm/v3/pipelines/orders quote the same ids"
            " from different accounts (inferred: HubSpot's guide shows no ids)",
        ),
        "catalog.py, pipelines.py, api.py",
    ),
    Rule(
        "order-stage",
        "An order's hs_pipeline_stage must be a stage of its hs_pipeline, as a deal's dealstage of its"
        " pipeline; a stage given alone is taken in the Order Pipeline",
        "400 VALIDATION_ERROR, INVALID_OPTION on hs_pipeline or hs_pipeline_stage",
        "inferred",
        (ORDERS + " (Pipelines and stages)", PIPELINES),
        "checks.py",
    ),
    Rule(
        "commerce-association-types",
        "HUBSPOT_DEFINED types: order to contact 507 (508 back), company 509 (510), deal 512 (511), line"
        " item 513 (514), cart 593 (592); cart to contact 586 (587), line item 590 (591); contact to"
        " company 279 (280), Primary 1 (2); deal to company 341 (342), Primary 5 (6)",
        "GET /crm/v4/associations/{from}/{to}/labels lists them; batch/create takes them; any other id or"
        " pair: 400 VALIDATION_ERROR; a Primary link also carries the unlabelled type",
        "documented",
        (ASSOCIATION_IDS, ORDERS + " (Associations)", CARTS + " (Associations)"),
        "catalog.py, associations.py, association_labels.py",
    ),
    Rule(
        "property-group-exists",
        "A property's groupName must name an existing property group of its object",
        "400 VALIDATION_ERROR; groups are made with POST /crm/v3/properties/{type}/groups",
        "inferred",
        (PROPERTIES,),
        "property_groups.py",
    ),
    Rule(
        "property-type-field-type",
        "type and fieldType must pair as HubSpot's table says: bool booleancheckbox|calculation_equation;"
        " enumeration booleancheckbox|checkbox|radio|select|calculation_equation; date date;"
        " datetime date; string text|textarea|file|html|phonenumber|calculation_equation;"
        " number number|calculation_equation",
        "400 VALIDATION_ERROR",
        "inferred",
        (PROPERTIES,),
        "property_rules.py",
    ),
    Rule(
        "property-options",
        "Each option has label, value and hidden (displayOrder and description optional); an enumeration"
        " needs options",
        "400 VALIDATION_ERROR",
        "inferred",
        (
            OPTION_INPUT,
            "https://developers.hubspot.com/docs/api-reference/latest/crm/properties/create-property",
        ),
        "property_rules.py",
    ),
    Rule(
        "archive-missing-204",
        "Archiving answers 204 with no body, whatever the ids name (a missing one too)",
        "204 on batch/archive and DELETE /crm/v3/objects/{type}/{id}",
        "documented",
        (ARCHIVE,),
        "writes.py, api.py",
    ),
    Rule(
        "association-labels",
        "USER_DEFINED association types are the labels an account makes for a pair of objects",
        "POST/GET /crm/v4/associations/{from}/{to}/labels; batch/create takes USER_DEFINED ids of that"
        " pair, else 400 VALIDATION_ERROR",
        "documented",
        (LABELS,),
        "association_labels.py, associations.py",
    ),
    Rule(
        "associate-default",
        "batch/associate/default links each pair with the pair's default (unlabelled) type",
        "200 with associationSpec per result; a missing record fails alone (207)",
        "documented",
        (ASSOCIATE_DEFAULT,),
        "associations.py",
    ),
    Rule(
        "subscription-status-request",
        "A subscription status change (communication preferences, date-based versions and v4) takes"
        " channel EMAIL, statusState NOT_SPECIFIED|SUBSCRIBED|UNSUBSCRIBED, an integer subscriptionId"
        " of one of the account's subscription types, legalBasis from HubSpot's seven, an email"
        " address as subscriberIdString; batches take at most 100 inputs",
        "400 VALIDATION_ERROR for the whole call",
        "inferred",
        (SUBSCRIPTION_STATUS, SUBSCRIPTION_SPEC),
        "subscriptions.py",
    ),
    Rule(
        "subscription-gdpr-legal-basis",
        "On an account with GDPR features on, a status change needs a legalBasis (and its explanation)",
        "400 VALIDATION_ERROR (sandbox setting gdpr_enabled)",
        "inferred",
        (SUBSCRIBE_V3, SUBSCRIPTION_STATUS),
        "subscriptions.py, config.py",
    ),
    Rule(
        "subscription-resubscribe",
        "The current API resubscribes an address that unsubscribed (from the type, or from all email):"
        " setStatusSuccessReason RESUBSCRIBE_OCCURRED; the legacy v3 subscribe refused to. An unchanged"
        " status answers NO_STATUS_CHANGE; a status is the address's, kept with no contact too",
        "200, the status set, setStatusSuccessReason RESUBSCRIBE_OCCURRED, NO_STATUS_CHANGE,"
        " REQUESTED_CHANGE_OCCURRED or (unsubscribe-all) UNSUBSCRIBE_FROM_ALL_OCCURRED",
        "documented",
        (SUBSCRIPTIONS_GUIDE, SUBSCRIPTION_SPEC),
        "subscriptions.py",
    ),
)


def as_json() -> list[JSON]:
    return [{**asdict(rule), "sources": list(rule.sources)} for rule in RULES]


def markdown_table() -> str:
    """RULES.md's table: one row a rule."""
    lines = [
        "| Rule | What HubSpot does | Sandbox answer | Answer | Sources | Where |",
        "|---|---|---|---|---|---|",
    ]
    for r in RULES:
        cells = (r.id, r.rule, r.answer, r.basis, "<br>".join(r.sources), r.where)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
