"""The subset of Shopify's GraphQL Admin schema the sandbox serves: what an import reads
(customers, orders, products, abandoned checkouts, companies) and the bulk-operation API.

Type and field names follow Shopify's reference (RULES.md gives the pages); a field left out here
is a validation error, as an unknown field is in Shopify. ``schema_for(version)`` builds the
schema of one API version: ``Order.cartToken`` and ``Order.checkoutToken`` exist from 2026-07,
``bulkOperations``/``bulkOperation`` from 2026-01.
"""

from __future__ import annotations

from functools import cache

from graphql import GraphQLSchema, build_schema

VERSIONS = ("2025-10", "2026-01", "2026-04", "2026-07")
"""The API versions served; 2025-10 keeps the old one-operation-at-a-time bulk limit."""


def served_version(requested: str) -> str | None:
    """The version a request to ``/admin/api/{requested}/`` is answered in: a served one as asked;
    an older dated one (no longer supported) falls forward to the oldest served, as Shopify
    answers an unsupported version with its oldest supported stable one; None (404) for anything
    else (a version not released, or not a version)."""
    if requested in VERSIONS:
        return requested
    year, dash, month = requested.partition("-")
    dated = dash == "-" and len(year) == 4 and len(month) == 2 and (year + month).isdigit()
    return VERSIONS[0] if dated and requested < VERSIONS[0] else None


_CONNECTION = """
type {name}Connection {{ edges: [{name}Edge!]! nodes: [{name}!]! pageInfo: PageInfo! }}
type {name}Edge {{ cursor: String! node: {name}! }}
"""
_PAGING = "first: Int, after: String, last: Int, before: String, reverse: Boolean = false"
_ROOT_PAGING = _PAGING + ", query: String"

_SDL = """
scalar DateTime
scalar Decimal
scalar Money
scalar URL
scalar UnsignedInt64

interface Node { id: ID! }

type PageInfo {
  hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String
}

enum CurrencyCode { USD CAD EUR GBP }
type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type MoneyBag { shopMoney: MoneyV2! presentmentMoney: MoneyV2! }

type MailingAddress implements Node {
  id: ID! address1: String address2: String city: String company: String country: String
  countryCodeV2: String firstName: String lastName: String name: String phone: String
  province: String provinceCode: String zip: String
}

enum CustomerEmailMarketingState { INVALID NOT_SUBSCRIBED PENDING REDACTED SUBSCRIBED UNSUBSCRIBED }
enum CustomerSmsMarketingState { NOT_SUBSCRIBED PENDING REDACTED SUBSCRIBED UNSUBSCRIBED }
enum CustomerMarketingOptInLevel { CONFIRMED_OPT_IN SINGLE_OPT_IN UNKNOWN }
enum CustomerConsentCollectedFrom { OTHER SHOPIFY }
enum CustomerState { DECLINED DISABLED ENABLED INVITED }

type CustomerEmailMarketingConsentState {
  marketingState: CustomerEmailMarketingState! marketingOptInLevel: CustomerMarketingOptInLevel
  consentUpdatedAt: DateTime
}
type CustomerSmsMarketingConsentState {
  marketingState: CustomerSmsMarketingState! marketingOptInLevel: CustomerMarketingOptInLevel!
  consentUpdatedAt: DateTime consentCollectedFrom: CustomerConsentCollectedFrom
}

type Customer implements Node {
  id: ID! email: String phone: String firstName: String lastName: String displayName: String!
  note: String state: CustomerState! tags: [String!]! taxExempt: Boolean! verifiedEmail: Boolean!
  createdAt: DateTime! updatedAt: DateTime! numberOfOrders: UnsignedInt64! amountSpent: MoneyV2!
  emailMarketingConsent: CustomerEmailMarketingConsentState
  smsMarketingConsent: CustomerSmsMarketingConsentState
  defaultAddress: MailingAddress addresses(first: Int): [MailingAddress!]!
  addressesV2(PAGING): MailingAddressConnection!
  orders(PAGING): OrderConnection!
}

enum ProductStatus { ACTIVE ARCHIVED DRAFT }
type Product implements Node {
  id: ID! title: String! handle: String! vendor: String! productType: String! status: ProductStatus!
  tags: [String!]! descriptionHtml: String! createdAt: DateTime! updatedAt: DateTime!
  publishedAt: DateTime variants(PAGING): ProductVariantConnection!
}
type ProductVariant implements Node {
  id: ID! title: String! sku: String price: Money! compareAtPrice: Money barcode: String
  position: Int! inventoryQuantity: Int taxable: Boolean! createdAt: DateTime! updatedAt: DateTime!
  product: Product!
}

enum OrderDisplayFinancialStatus {
  AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED
}
enum OrderDisplayFulfillmentStatus {
  FULFILLED IN_PROGRESS ON_HOLD OPEN PARTIALLY_FULFILLED PENDING_FULFILLMENT REQUEST_DECLINED
  RESTOCKED SCHEDULED UNFULFILLED
}
enum OrderCancelReason { CUSTOMER DECLINED FRAUD INVENTORY OTHER STAFF }

type LineItem implements Node {
  id: ID! name: String! title: String! sku: String quantity: Int! currentQuantity: Int!
  variantTitle: String vendor: String variant: ProductVariant product: Product
  originalUnitPriceSet: MoneyBag! totalDiscountSet: MoneyBag!
}

type Order implements Node {
  id: ID! name: String! email: String phone: String createdAt: DateTime! updatedAt: DateTime!
  processedAt: DateTime! cancelledAt: DateTime cancelReason: OrderCancelReason closedAt: DateTime
  currencyCode: CurrencyCode! displayFinancialStatus: OrderDisplayFinancialStatus
  displayFulfillmentStatus: OrderDisplayFulfillmentStatus! tags: [String!]! note: String
  test: Boolean! sourceName: String customer: Customer purchasingEntity: PurchasingEntity
  billingAddress: MailingAddress shippingAddress: MailingAddress
  subtotalPriceSet: MoneyBag totalPriceSet: MoneyBag! totalTaxSet: MoneyBag
  totalDiscountsSet: MoneyBag
  lineItems(PAGING): LineItemConnection!
  ORDER_TOKENS
}

type AbandonedCheckoutLineItem implements Node {
  id: ID! title: String sku: String quantity: Int! variantTitle: String variant: ProductVariant
  product: Product originalUnitPriceSet: MoneyBag! originalTotalPriceSet: MoneyBag!
}
type AbandonedCheckout implements Node {
  id: ID! name: String! abandonedCheckoutUrl: URL! completedAt: DateTime createdAt: DateTime!
  updatedAt: DateTime! customer: Customer note: String! discountCodes: [String!]!
  taxesIncluded: Boolean! billingAddress: MailingAddress shippingAddress: MailingAddress
  subtotalPriceSet: MoneyBag! totalPriceSet: MoneyBag! totalTaxSet: MoneyBag
  totalDiscountSet: MoneyBag! totalLineItemsPriceSet: MoneyBag!
  lineItems(PAGING): AbandonedCheckoutLineItemConnection!
}

type CompanyContact implements Node {
  id: ID! customer: Customer! isMainContact: Boolean! title: String locale: String
  createdAt: DateTime! updatedAt: DateTime!
}
type CompanyAddress implements Node {
  id: ID! address1: String! address2: String city: String companyName: String! country: String
  countryCode: String! zip: String zoneCode: String province: String firstName: String
  lastName: String recipient: String phone: String
}
type CompanyLocation implements Node {
  id: ID! name: String! externalId: String note: String phone: String createdAt: DateTime!
  updatedAt: DateTime! billingAddress: CompanyAddress shippingAddress: CompanyAddress
}
type PurchasingCompany { company: Company! contact: CompanyContact location: CompanyLocation! }
union PurchasingEntity = Customer | PurchasingCompany
type Company implements Node {
  id: ID! name: String! externalId: String note: String createdAt: DateTime! updatedAt: DateTime!
  customerSince: DateTime! mainContact: CompanyContact
  contacts(PAGING): CompanyContactConnection!
  locations(PAGING): CompanyLocationConnection!
}

enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationType { MUTATION QUERY }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationUserErrorCode { INVALID LIMIT_REACHED OPERATION_IN_PROGRESS }

type BulkOperation implements Node {
  id: ID! status: BulkOperationStatus! type: BulkOperationType! errorCode: BulkOperationErrorCode
  createdAt: DateTime! completedAt: DateTime objectCount: UnsignedInt64!
  rootObjectCount: UnsignedInt64! fileSize: UnsignedInt64 url: URL partialDataUrl: URL
  query: String!
}
type BulkOperationUserError { code: BulkOperationUserErrorCode field: [String!] message: String! }
type UserError { field: [String!] message: String! }
type BulkOperationRunQueryPayload { bulkOperation: BulkOperation userErrors: [BulkOperationUserError!]! }
type BulkOperationCancelPayload { bulkOperation: BulkOperation userErrors: [UserError!]! }

type QueryRoot {
  customers(ROOT_PAGING): CustomerConnection!
  orders(ROOT_PAGING): OrderConnection!
  products(ROOT_PAGING): ProductConnection!
  abandonedCheckouts(ROOT_PAGING): AbandonedCheckoutConnection!
  companies(ROOT_PAGING): CompanyConnection!
  customer(id: ID!): Customer
  order(id: ID!): Order
  product(id: ID!): Product
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
  BULK_QUERIES
}

type Mutation {
  bulkOperationRunQuery(query: String!, groupObjects: Boolean = false): BulkOperationRunQueryPayload
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
}

schema { query: QueryRoot mutation: Mutation }
"""

CONNECTED = (
    "MailingAddress",
    "Order",
    "Product",
    "ProductVariant",
    "LineItem",
    "AbandonedCheckout",
    "AbandonedCheckoutLineItem",
    "Customer",
    "Company",
    "CompanyContact",
    "CompanyLocation",
    "BulkOperation",
)


def sdl(version: str) -> str:
    """The schema text of ``version`` (one of :data:`VERSIONS`)."""
    tokens = "cartToken: String checkoutToken: String" if version >= "2026-07" else ""
    bulk = (
        f"bulkOperations({_ROOT_PAGING}): BulkOperationConnection! bulkOperation(id: ID!): BulkOperation"
        if version >= "2026-01"
        else ""
    )
    text = (
        _SDL.replace("ROOT_PAGING", _ROOT_PAGING)
        .replace("PAGING", _PAGING)
        .replace("ORDER_TOKENS", tokens)
        .replace("BULK_QUERIES", bulk)
    )
    return text + "".join(_CONNECTION.format(name=name) for name in CONNECTED)


@cache
def schema_for(version: str) -> GraphQLSchema:
    return build_schema(sdl(version))
