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
        "Line items belong to one single parent object: a line item already on a deal cannot join another",
        "v4 batch/create and batch/associate/default: that input fails (207, VALIDATION_ERROR);"
        " a create with associations to two deals: 400 VALIDATION_ERROR",
        "inferred",
        (LINE_ITEMS,),
        "associations.py, writes.py",
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
