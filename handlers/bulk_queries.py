"""The GraphQL the bulk import sends: one bulk query per resource (one connection nested at most,
so Shopify's five-connection, two-level limits hold), the mutation that starts it and the polls
that follow it. The fields are those ``handlers.bulk_convert`` turns into webhook bodies.
"""

from __future__ import annotations

_ADDRESS = """fragment Address on MailingAddress { id firstName lastName name company address1
  address2 city province provinceCode country countryCodeV2 zip phone }"""
_MONEY = "fragment Money on MoneyBag { shopMoney { amount currencyCode } }"
_CUSTOMER = """fragment CustomerFields on Customer { id email phone firstName lastName note state
  tags taxExempt verifiedEmail createdAt updatedAt numberOfOrders amountSpent { amount currencyCode }
  emailMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt }
  smsMarketingConsent { marketingState marketingOptInLevel consentUpdatedAt consentCollectedFrom }
  defaultAddress { ...Address } addresses { ...Address } }"""

_CUSTOMERS = "{ customers { edges { node { ...CustomerFields } } } }"
_PRODUCTS = """{ products { edges { node { id title handle vendor productType status tags
  descriptionHtml createdAt updatedAt publishedAt variants { edges { node { id title sku price
  compareAtPrice barcode position inventoryQuantity taxable createdAt updatedAt } } } } } } }"""
_ORDERS = """{ orders { edges { node { id name email phone createdAt updatedAt processedAt
  cancelledAt cancelReason closedAt currencyCode displayFinancialStatus displayFulfillmentStatus
  tags note test sourceName TOKENS customer { ...CustomerFields }
  purchasingEntity { ... on PurchasingCompany { company { id } location { id } } }
  billingAddress { ...Address }
  shippingAddress { ...Address } subtotalPriceSet { ...Money } totalPriceSet { ...Money }
  totalTaxSet { ...Money } totalDiscountsSet { ...Money }
  lineItems { edges { node { id name title sku quantity currentQuantity variantTitle vendor
    variant { id } product { id } originalUnitPriceSet { ...Money } totalDiscountSet { ...Money }
  } } } } } } }"""
_CHECKOUTS = """{ abandonedCheckouts { edges { node { id name abandonedCheckoutUrl completedAt
  createdAt updatedAt note discountCodes taxesIncluded customer { ...CustomerFields }
  billingAddress { ...Address } shippingAddress { ...Address } subtotalPriceSet { ...Money }
  totalPriceSet { ...Money } totalTaxSet { ...Money } totalDiscountSet { ...Money }
  totalLineItemsPriceSet { ...Money }
  lineItems { edges { node { id title sku quantity variantTitle variant { id } product { id }
    originalUnitPriceSet { ...Money } originalTotalPriceSet { ...Money } } } } } } } }"""
_COMPANY_ADDRESS = """fragment CompanyAddress on CompanyAddress { id address1 address2 city companyName
  country countryCode zip zoneCode firstName lastName recipient phone }"""
_COMPANIES = """{ companies { edges { node { id name externalId note customerSince createdAt updatedAt
  contacts { edges { node { id title isMainContact createdAt updatedAt customer { id } } } }
  locations { edges { node { id name externalId phone createdAt updatedAt
    billingAddress { ...CompanyAddress } shippingAddress { ...CompanyAddress } } } } } } } }"""
"""Companies (X2: a Shopify Plus shop's B2B customers) with their contacts and locations: two
connections under the root, within the bulk limits (five connections, two levels)."""

RUN = """mutation($query: String!) { bulkOperationRunQuery(query: $query) {
  bulkOperation { id status } userErrors { code field message } } }"""
_OPERATION = "id status errorCode objectCount rootObjectCount fileSize url partialDataUrl"
POLL_BY_ID = f"query($id: ID!) {{ bulkOperation(id: $id) {{ {_OPERATION} }} }}"
POLL_CURRENT = f"{{ currentBulkOperation {{ {_OPERATION} }} }}"


def order_tokens(api_version: str) -> bool:
    """Order.cartToken and Order.checkoutToken exist from 2026-07 (what joins an order to its
    checkout, D4); before, the import's orders carry neither."""
    return api_version >= "2026-07"


def polls_by_id(api_version: str) -> bool:
    """``bulkOperation(id:)`` exists from 2026-01; before, ``currentBulkOperation``."""
    return api_version >= "2026-01"


def bulk_query(resource: str, api_version: str) -> str:
    """The bulk query of one import resource in one API version, with the fragments it uses."""
    body = {"customers": _CUSTOMERS, "products": _PRODUCTS, "orders": _ORDERS, "checkouts": _CHECKOUTS,
            "companies": _COMPANIES}  # fmt: skip
    text = body[resource].replace("TOKENS", "cartToken checkoutToken" if order_tokens(api_version) else "")
    named = (("...Address", _ADDRESS), ("...Money", _MONEY), ("...CompanyAddress", _COMPANY_ADDRESS))
    fragments = [f for name, f in named if f"{name} " in text or f"{name}}}" in text]
    if "...CustomerFields" in text:
        fragments.append(_CUSTOMER)
        if _ADDRESS not in fragments:
            fragments.append(_ADDRESS)
    return "\n".join([text, *fragments])
