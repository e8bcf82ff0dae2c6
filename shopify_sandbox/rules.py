"""Every Shopify rule the sandbox enforces, what it answers, and where Shopify documents it.

RULES.md is this table in Markdown (``markdown_table()``; a test keeps the two equal), served
with the versions at ``GET /_sandbox/rules``. ``basis`` is ``documented`` when Shopify's pages
state the rule and the answer's shape, ``inferred`` when they state the rule but not the exact
answer (or not the rule at all): the sandbox's reading then.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

_API = "https://shopify.dev/docs/api/admin-graphql"
BULK_GUIDE = "https://shopify.dev/api/usage/bulk-operations/queries"
RUN_QUERY = f"{_API}/2026-01/payloads/BulkOperationRunQueryPayload"
USER_ERROR_CODES = f"{_API}/latest/enums/BulkOperationUserErrorCode"
ERROR_CODES = f"{_API}/2024-04/enums/BulkOperationErrorCode"
BULK_OPERATION = f"{_API}/2025-10/objects/BulkOperation"
STATUS = f"{_API}/2024-01/enums/BulkOperationStatus"
CURRENT = f"{_API}/2024-04/queries/currentBulkOperation"
LIST = f"{_API}/2026-07/queries/bulkOperations"
LIST_CHANGELOG = "https://shopify.dev/changelog/posts/new-queries-for-bulk-operations"
CANCEL = f"{_API}/2025-10/mutations/bulkOperationCancel"
RATE_LIMITS = "https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits"
LIMITS = "https://shopify.dev/docs/api/usage/limits"
THROTTLED_THREAD = "https://community.shopify.com/t/throttled/254776 (a captured THROTTLED answer)"
ABANDONED = f"{_API}/2025-10/objects/AbandonedCheckout"
CART_TOKEN = "https://shopify.dev/changelog/new-field-carttoken-added-to-the-order-graphql-admin-api"
CHECKOUT_TOKEN = "https://shopify.dev/changelog/new-checkouttoken-field-added-to-the-order-object"
BAD_TOKEN = (
    "https://community.shopify.com/t/errors-api-invalid-api-key-or-access-token-unrecognized-login-or-wrong-password/"
    "351831 (captured 401 bodies)"
)
UNDEFINED_FIELD = (
    "https://community.shopify.com/t/missing-fields-in-graph-ql/15906 (a captured bulk userError)"
)
GCS_DOWNLOADS = "https://docs.cloud.google.com/storage/docs/downloads"


@dataclass(frozen=True)
class Rule:
    id: str
    rule: str
    answer: str
    basis: Literal["documented", "inferred"]
    sources: tuple[str, ...]
    where: str


RULES: tuple[Rule, ...] = (
    Rule(
        "access-token",
        "Admin API calls carry the app's token in X-Shopify-Access-Token",
        '401 {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}'
        " without it or with another",
        "documented",
        (BAD_TOKEN,),
        "server.py, errors.py",
    ),
    Rule(
        "api-versions",
        "The endpoint is /admin/api/{version}/graphql.json; the sandbox serves 2025-10, 2026-01, 2026-04"
        " and 2026-07; an older dated version falls forward to the oldest served, as Shopify answers an"
        " unsupported version in its oldest supported stable one; every answer names its version in"
        " X-Shopify-API-Version",
        "404 for a version not released, or not a version",
        "inferred",
        (
            BULK_GUIDE,
            "https://community.shopify.com/t/is-the-older-version-of-shopify-api-2021-10-still-working/164634/2",
        ),
        "server.py, schema.py",
    ),
    Rule(
        "unknown-field",
        "A field the schema lacks is a validation error; nothing runs",
        "200, errors[{message: \"Field 'x' doesn't exist on type 'T'\", locations, extensions {code"
        " undefinedField, typeName, fieldName}}], no data",
        "inferred",
        (UNDEFINED_FIELD,),
        "errors.py, server.py",
    ),
    Rule(
        "order-tokens",
        "Order.cartToken and Order.checkoutToken exist in the GraphQL Admin API from 2026-07 only",
        "undefinedField on earlier versions",
        "documented",
        (CART_TOKEN, CHECKOUT_TOKEN),
        "schema.py",
    ),
    Rule(
        "abandoned-checkouts",
        "QueryRoot.abandonedCheckouts lists AbandonedCheckout objects (abandonedCheckoutUrl, completedAt,"
        " customer, lineItems, price sets, addresses, no email and no token field); a checkout is abandoned"
        " once contact details were given and it was not completed",
        "the sample store's uncompleted checkouts with an email",
        "documented",
        (ABANDONED,),
        "schema.py, shop.py, convert.py",
    ),
    Rule(
        "bulk-one-connection",
        "A bulk query must include at least one connection field",
        "userErrors [{code INVALID, field [query]}], bulkOperation null",
        "documented",
        (RUN_QUERY, USER_ERROR_CODES),
        "bulk_rules.py",
    ),
    Rule(
        "bulk-five-connections",
        "A bulk query holds at most five connections",
        "userErrors [{code INVALID}]",
        "documented",
        (RUN_QUERY, BULK_GUIDE),
        "bulk_rules.py",
    ),
    Rule(
        "bulk-depth-two",
        "Connections nest at most two levels deep in a bulk query",
        "userErrors [{code INVALID}]",
        "documented",
        (RUN_QUERY, BULK_GUIDE),
        "bulk_rules.py",
    ),
    Rule(
        "bulk-no-node",
        "The top-level node and nodes fields cannot be used in a bulk query; it queries a single top-level"
        " field",
        "userErrors [{code INVALID}]",
        "documented",
        (BULK_GUIDE,),
        "bulk_rules.py",
    ),
    Rule(
        "bulk-invalid-query",
        "A bulk query that does not parse or validate is refused with the validation message",
        "userErrors [{code INVALID, message \"Invalid bulk query: Field 'x' doesn't exist on type 'T'\"}]",
        "inferred",
        (UNDEFINED_FIELD, USER_ERROR_CODES),
        "bulk_rules.py",
    ),
    Rule(
        "bulk-concurrency",
        "From API 2026-01 an app runs up to five bulk query operations at a time per shop; before, one",
        "before 2026-01: userErrors [{code OPERATION_IN_PROGRESS}]; from 2026-01, a sixth: [{code"
        " LIMIT_REACHED}] (the code for this case is inferred)",
        "documented",
        (BULK_GUIDE, USER_ERROR_CODES),
        "operations.py, resolvers.py",
    ),
    Rule(
        "bulk-lifecycle",
        "An operation goes CREATED, RUNNING, then COMPLETED (url set), FAILED (errorCode, partialDataUrl"
        " when some data was retrieved) or CANCELING then CANCELED; objectCount counts every object,"
        " rootObjectCount the top-level ones",
        "one step each time a request reads the operation; the export is written on the RUNNING step",
        "documented",
        (BULK_OPERATION, STATUS, ERROR_CODES),
        "operations.py",
    ),
    Rule(
        "bulk-polling",
        "currentBulkOperation(type:) returns the app's most recent operation; bulkOperation(id:) and"
        " bulkOperations (newest first) from 2026-01; node(id:) in every version",
        "as documented; bulkOperations' query/sortKey filters are not applied",
        "documented",
        (CURRENT, LIST, LIST_CHANGELOG),
        "schema.py, resolvers.py",
    ),
    Rule(
        "bulk-cancel",
        "bulkOperationCancel(id:) starts cancelling a running operation (CANCELING, then CANCELED)",
        'an operation no longer running: userErrors [{message "A bulk operation cannot be canceled when it'
        ' is <status>"}] (wording inferred)',
        "documented",
        (CANCEL, STATUS),
        "operations.py, resolvers.py",
    ),
    Rule(
        "bulk-jsonl",
        "The result is JSONL, one object a line; nodes of a nested connection are their own lines with"
        " __parentId naming the parent; other nested objects stay inline",
        "parents before their children (depth first), which also satisfies groupObjects",
        "documented",
        (BULK_GUIDE,),
        "jsonl.py",
    ),
    Rule(
        "bulk-download-range",
        "The url is a signed Cloud Storage URL (no Shopify token); Cloud Storage downloads honour an"
        " optional Range header, which is what resumes an interrupted download",
        "GET /_sandbox/bulk/{n}.jsonl, 206 Partial Content for a Range request",
        "documented",
        (GCS_DOWNLOADS, BULK_OPERATION),
        "server.py",
    ),
    Rule(
        "cost-calculation",
        "Every field has a cost: scalar and enum 0, object 1, connection 2 plus the objects requested"
        " (first or last) times each one's cost, mutation 10; the requested cost is charged first and the"
        " difference to the actual cost refunded",
        "extensions.cost {requestedQueryCost, actualQueryCost, throttleStatus} on every answer",
        "documented",
        (RATE_LIMITS, LIMITS),
        "cost.py",
    ),
    Rule(
        "cost-single-query-max",
        "A single query may not cost more than 1,000 points",
        "200, errors[{code MAX_COST_EXCEEDED}], nothing charged (code and wording inferred)",
        "inferred",
        (RATE_LIMITS,),
        "cost.py, server.py",
    ),
    Rule(
        "throttle-standard-plan",
        "Standard plan: 100 points a second restored (Advanced 200, Plus 1,000, enterprise 2,000); a"
        " request whose requested cost exceeds what the bucket holds is throttled",
        "200, errors[{message Throttled, extensions {code THROTTLED}}], actualQueryCost null;"
        " maximumAvailable 2,000 (the bucket size is inferred)",
        "inferred",
        (RATE_LIMITS, THROTTLED_THREAD),
        "cost.py, server.py",
    ),
    Rule(
        "page-size",
        "A connection needs first or last, at most 250",
        "errors[{message}] with that field null",
        "inferred",
        (LIMITS,),
        "resolvers.py",
    ),
)


def as_json() -> list[dict[str, Any]]:
    return [{**asdict(rule), "sources": list(rule.sources)} for rule in RULES]


def markdown_table() -> str:
    """RULES.md's table: one row a rule."""
    lines = [
        "| Rule | What Shopify does | Sandbox answer | Basis | Sources | Where |",
        "|---|---|---|---|---|---|",
    ]
    for r in RULES:
        cells = (r.id, r.rule, r.answer, r.basis, "<br>".join(r.sources), r.where)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
