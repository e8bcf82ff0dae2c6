"""Pydantic models of the Shopify webhook bodies (and Admin REST records) the product reads.

Shopify adds fields in every API version and sends nulls freely, so every model keeps unknown
fields (``extra="allow"``) and gives every mapped field a default. The models are strict about
kinds (``schemas.types``): validated directly, a field of the wrong kind fails the model. Webhook
bodies are read through the tolerant parse (``schemas.tolerance``), which syncs such a field as
absent and reports it, so only a body's identity (``ShopifyModel.identity``) decides whether the
record syncs (SPEC R1). Nested objects therefore require only what the rules cannot do without
(a variant's id); everything else, nested ids included, is optional. Field names are Shopify's, so
the models double as the documentation of what the product reads. Deletion payloads carry little
more than ``id`` and have models of their own.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import (
    ConsentCollectedFromField,
    EmailMarketingStateField,
    FinancialStatusField,
    FulfillmentStatusField,
    Id,
    ListOf,
    MarketingOptInLevelField,
    MaybeCount,
    MaybeGid,
    MaybeId,
    MaybeMoney,
    MaybeText,
    MaybeTextId,
    MaybeTimestamp,
    ProductStatusField,
    PublishedScopeField,
    Quantity,
    RawText,
    SmsMarketingStateField,
    gid_number,
)


class ShopifyModel(BaseModel):
    """Base of every Shopify model: unknown fields kept, values validated on assignment too."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, frozen=False)

    identity: ClassVar[tuple[str, ...]] = ()
    """For a webhook body's model: the fields that name the record, of which at least one must
    be readable or the delivery is dead-lettered whole (SPEC R1). Empty for nested objects."""

    def extra_fields(self) -> dict[str, Any]:
        """Fields Shopify sent that the product does not map (kept, never rejected)."""
        return dict(self.__pydantic_extra__ or {})


class Address(ShopifyModel):
    """A customer's (default) address, or an order's billing/shipping address."""

    id: MaybeId = None
    customer_id: MaybeId = None
    first_name: MaybeText = None
    last_name: MaybeText = None
    company: MaybeText = None
    address1: MaybeText = None
    address2: MaybeText = None
    city: MaybeText = None
    province: MaybeText = None
    province_code: MaybeText = None
    country: MaybeText = None
    country_code: MaybeText = None
    zip: MaybeText = None
    phone: MaybeText = None
    default: bool | None = None


class EmailMarketingConsent(ShopifyModel):
    """``email_marketing_consent``: API 2022-04's replacement of ``accepts_marketing``,
    ``accepts_marketing_updated_at`` and ``marketing_opt_in_level`` (X4)."""

    state: EmailMarketingStateField = None
    opt_in_level: MarketingOptInLevelField = None
    consent_updated_at: MaybeTimestamp = None


class SmsMarketingConsent(ShopifyModel):
    """``sms_marketing_consent`` (X4): like the email consent, plus where it was collected."""

    state: SmsMarketingStateField = None
    opt_in_level: MarketingOptInLevelField = None
    consent_updated_at: MaybeTimestamp = None
    consent_collected_from: ConsentCollectedFromField = None


class CustomerBase(ShopifyModel):
    """A customer's fields, as nested in orders and checkouts (``customer``): there its id is
    optional, so the order never depends on it (only the deal's Customer ID reads it)."""

    id: MaybeId = None
    email: MaybeText = None
    first_name: MaybeText = None
    last_name: MaybeText = None
    phone: MaybeText = None
    note: MaybeText = None
    tags: MaybeText = None
    state: MaybeText = None
    verified_email: bool | None = None
    tax_exempt: bool | None = None
    accepts_marketing: bool | None = None  # legacy (deprecated in API 2022-04), as the next two
    accepts_marketing_updated_at: MaybeTimestamp = None
    marketing_opt_in_level: MarketingOptInLevelField = None
    email_marketing_consent: EmailMarketingConsent | None = None
    sms_marketing_consent: SmsMarketingConsent | None = None
    orders_count: MaybeCount = None
    total_spent: MaybeMoney = None
    currency: MaybeText = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    default_address: Address | None = None
    addresses: ListOf[Address] = Field(default_factory=list)

    def accepts_email_marketing(self) -> bool | None:
        """Accepts marketing, from whichever field this API version sends (C7)."""
        if self.accepts_marketing is not None:
            return self.accepts_marketing
        if self.email_marketing_consent is not None and self.email_marketing_consent.state:
            return self.email_marketing_consent.state == "subscribed"
        return None


class Customer(CustomerBase):
    """``customers/create|update`` bodies: a customer named by its id."""

    identity: ClassVar[tuple[str, ...]] = ("id",)

    id: Id


class OrderLineItem(ShopifyModel):
    """A line of an order: what was bought, for how much (P2). Lines are keyed by variant,
    product, SKU or title, so a line without a readable id still syncs."""

    id: MaybeId = None
    product_id: MaybeId = None
    variant_id: MaybeId = None
    sku: MaybeText = None
    title: MaybeText = None
    name: MaybeText = None
    variant_title: MaybeText = None
    vendor: MaybeText = None
    quantity: Quantity = 0
    price: MaybeMoney = None
    total_discount: MaybeMoney = None
    grams: MaybeCount = None


class Money(ShopifyModel):
    """An amount in one currency (``shop_money`` of a price set)."""

    amount: MaybeMoney = None
    currency_code: MaybeText = None


class PriceSet(ShopifyModel):
    """Shopify's price set: the amount in the shop's currency and in the buyer's."""

    shop_money: Money | None = None
    presentment_money: Money | None = None


class OrderCompany(ShopifyModel):
    """A B2B order's purchasing company (REST ``company``: ``{id, location_id}``; GraphQL's
    ``PurchasingCompany`` names the company and the location the order was placed for, X2)."""

    id: MaybeId = None
    location_id: MaybeId = None


class Order(ShopifyModel):
    """``orders/create|updated|paid|fulfilled|cancelled`` bodies (D1, D2, D5, D6, D7)."""

    identity: ClassVar[tuple[str, ...]] = ("id",)

    id: Id
    name: MaybeText = None
    order_number: MaybeCount = None
    number: MaybeCount = None
    email: MaybeText = None
    contact_email: MaybeText = None
    phone: MaybeText = None
    token: MaybeText = None
    cart_token: MaybeText = None
    checkout_token: MaybeText = None
    checkout_id: MaybeId = None
    customer: CustomerBase | None = None
    buyer_accepts_marketing: bool | None = None
    cancel_reason: MaybeText = None
    cancelled_at: MaybeTimestamp = None
    closed_at: MaybeTimestamp = None
    processed_at: MaybeTimestamp = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    currency: MaybeText = None
    financial_status: FinancialStatusField = None
    fulfillment_status: FulfillmentStatusField = None
    landing_site: MaybeText = None
    landing_site_ref: MaybeText = None
    referring_site: MaybeText = None
    source_name: MaybeText = None
    note: MaybeText = None
    tags: MaybeText = None
    processing_method: MaybeText = None
    subtotal_price: MaybeMoney = None
    taxes_included: bool | None = None
    total_discounts: MaybeMoney = None
    total_line_items_price: MaybeMoney = None
    total_price: MaybeMoney = None
    current_total_price: MaybeMoney = None  # after refunds, returns and edits (E1's net revenue)
    total_tax: MaybeMoney = None
    total_shipping_price_set: PriceSet | None = None  # X1: the Order's shipping cost (shop money)
    total_weight: MaybeCount = None
    test: bool | None = None
    line_items: ListOf[OrderLineItem] = Field(default_factory=list)
    billing_address: Address | None = None
    shipping_address: Address | None = None
    company: OrderCompany | None = None  # X2: set on B2B orders only

    def buyer_email(self) -> str | None:
        """The email the order was placed with: the order's, else its customer's."""
        return self.email or self.contact_email or (self.customer.email if self.customer else None)


class CheckoutLineItem(ShopifyModel):
    """A line of a checkout. Checkout lines have a ``key`` rather than a numeric id."""

    key: MaybeText = None
    id: MaybeTextId = None
    product_id: MaybeId = None
    variant_id: MaybeId = None
    sku: MaybeText = None
    title: MaybeText = None
    variant_title: MaybeText = None
    vendor: MaybeText = None
    quantity: Quantity = 0
    price: MaybeMoney = None
    line_price: MaybeMoney = None
    grams: MaybeCount = None


class Checkout(ShopifyModel):
    """``checkouts/create|update`` bodies and abandoned checkouts from the Admin API (D3, D4).

    Named by its cart token, else its token (``streams.rules.keys.journey_key``): one of the two."""

    identity: ClassVar[tuple[str, ...]] = ("token", "cart_token")

    id: MaybeId = None
    token: MaybeText = None
    cart_token: MaybeText = None
    email: MaybeText = None
    phone: MaybeText = None
    name: MaybeText = None
    customer: CustomerBase | None = None
    buyer_accepts_marketing: bool | None = None
    abandoned_checkout_url: MaybeText = None
    completed_at: MaybeTimestamp = None
    closed_at: MaybeTimestamp = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    currency: MaybeText = None
    landing_site: MaybeText = None
    referring_site: MaybeText = None
    source_name: MaybeText = None
    note: MaybeText = None
    subtotal_price: MaybeMoney = None
    taxes_included: bool | None = None
    total_discounts: MaybeMoney = None
    total_line_items_price: MaybeMoney = None
    total_price: MaybeMoney = None
    total_tax: MaybeMoney = None
    total_weight: MaybeCount = None
    line_items: ListOf[CheckoutLineItem] = Field(default_factory=list)
    billing_address: Address | None = None
    shipping_address: Address | None = None

    def buyer_email(self) -> str | None:
        """The contact email the buyer gave: the checkout's, else its customer's."""
        return self.email or (self.customer.email if self.customer else None)


class CartLineItem(ShopifyModel):
    """A line of an online-store cart."""

    id: MaybeId = None
    key: MaybeText = None
    product_id: MaybeId = None
    variant_id: MaybeId = None
    sku: MaybeText = None
    title: MaybeText = None
    vendor: MaybeText = None
    quantity: Quantity = 0
    price: MaybeMoney = None
    line_price: MaybeMoney = None
    total_discount: MaybeMoney = None


class Cart(ShopifyModel):
    """``carts/create|update`` bodies (online-store carts only). Carts carry no buyer identity;
    a cart is named by its token, else its id."""

    identity: ClassVar[tuple[str, ...]] = ("token", "id")

    id: MaybeTextId = None
    token: MaybeText = None
    note: MaybeText = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    line_items: ListOf[CartLineItem] = Field(default_factory=list)


class ProductImage(ShopifyModel):
    id: MaybeId = None
    src: MaybeText = None
    alt: MaybeText = None
    position: MaybeCount = None


class Variant(ShopifyModel):
    """A product variant. P5: variants become HubSpot products linked to their parent, by id,
    so a variant without a readable id is dropped (and reported); the product still syncs."""

    id: Id
    product_id: MaybeId = None
    title: MaybeText = None
    price: MaybeMoney = None
    compare_at_price: MaybeMoney = None
    sku: MaybeText = None
    barcode: MaybeText = None
    position: MaybeCount = None
    option1: MaybeText = None
    option2: MaybeText = None
    option3: MaybeText = None
    inventory_quantity: MaybeCount = None
    image_id: MaybeId = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None


class Product(ShopifyModel):
    """``products/create|update`` bodies (P1). Webhooks carry full variants for the first 100."""

    identity: ClassVar[tuple[str, ...]] = ("id",)

    id: Id
    title: MaybeText = None
    body_html: RawText = None
    handle: MaybeText = None
    product_type: MaybeText = None
    vendor: MaybeText = None
    tags: MaybeText = None
    status: ProductStatusField = None
    published_at: MaybeTimestamp = None
    published_scope: PublishedScopeField = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    variants: ListOf[Variant] = Field(default_factory=list)
    images: ListOf[ProductImage] = Field(default_factory=list)
    image: ProductImage | None = None

    def price(self) -> MaybeMoney:
        """The product's price for P1: its first variant's (Shopify has no product-level price)."""
        ordered = sorted(self.variants, key=lambda v: (v.position is None, v.position or 0))
        return ordered[0].price if ordered else None

    def image_urls(self) -> list[str]:
        urls = [img.src for img in self.images if img.src]
        if not urls and self.image is not None and self.image.src:
            urls.append(self.image.src)
        return urls


class Company(ShopifyModel):
    """``companies/create|update|delete`` bodies (X2): a B2B company of the shop (Shopify Plus). Its
    locations arrive as ``company_locations/*``, each naming its company.

    Shopify's documented payloads name the company by its global id (``admin_graphql_api_id``,
    ``gid://shopify/Company/<id>``) and carry no numeric ``id``; a body may carry either (the REST
    id is the global id's number): :meth:`company_id`. The delete carries the whole company too."""

    identity: ClassVar[tuple[str, ...]] = ("id", "admin_graphql_api_id")

    id: MaybeId = None
    admin_graphql_api_id: MaybeGid = None
    name: MaybeText = None
    external_id: MaybeText = None
    note: MaybeText = None
    customer_since: MaybeTimestamp = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None

    def company_id(self) -> int | None:
        return self.id if self.id is not None else gid_number(self.admin_graphql_api_id)


class CompanyRef(ShopifyModel):
    """A company nested in a B2B body (a location's, a company contact's ``company``): Shopify's
    sample names it by its global id only (``admin_graphql_api_id``); a numeric ``id``, if a
    version sends one, is read too."""

    id: MaybeId = None
    admin_graphql_api_id: MaybeGid = None
    name: MaybeText = None

    def company_id(self) -> int | None:
        return self.id if self.id is not None else gid_number(self.admin_graphql_api_id)


class CompanyLocation(ShopifyModel):
    """``company_locations/create|update|delete`` bodies (X2): a branch of a company, with its
    billing and shipping addresses. Named by its company (the HubSpot record it feeds): its
    ``company_id``, else the nested ``company``'s global id, as Shopify's documented payload names
    it (with the location's own global id and no numeric ids). A location without a readable id
    of its own is ignored (a field problem says why)."""

    identity: ClassVar[tuple[str, ...]] = ("company_id", "company")

    id: MaybeId = None
    admin_graphql_api_id: MaybeGid = None
    company_id: MaybeId = None
    company: CompanyRef | None = None
    name: MaybeText = None
    external_id: MaybeText = None
    phone: MaybeText = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    billing_address: Address | None = None
    shipping_address: Address | None = None

    def location_id(self) -> int | None:
        return self.id if self.id is not None else gid_number(self.admin_graphql_api_id)

    def owner_id(self) -> int | None:
        """The Shopify company the location belongs to."""
        if self.company_id is not None:
            return self.company_id
        return self.company.company_id() if self.company is not None else None


class CompanyContact(ShopifyModel):
    """``company_contacts/create|update|delete`` bodies (X2): a customer acting for a company.

    Shopify's payload names everything by Admin GraphQL global ids and carries no email: the
    contact (``admin_graphql_api_id``), its customer (``customer_admin_graphql_api_id``, whose
    ``customers/*`` deliveries hold the email) and the company (``company``). Named by its
    customer, whose records it joins (``streams.rules.company_members``)."""

    identity: ClassVar[tuple[str, ...]] = ("customer_admin_graphql_api_id",)

    customer_admin_graphql_api_id: MaybeGid = None
    admin_graphql_api_id: MaybeGid = None
    title: MaybeText = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    company: CompanyRef | None = None

    def customer_id(self) -> int | None:
        return gid_number(self.customer_admin_graphql_api_id)

    def company_id(self) -> int | None:
        return self.company.company_id() if self.company is not None else None


class Deleted(ShopifyModel):
    """``orders/delete`` and ``products/delete``: just ``{id}``."""

    identity: ClassVar[tuple[str, ...]] = ("id",)

    id: Id


class CustomerDeleted(Deleted):
    """``customers/delete``: ``{id, ...}`` without email; C3 says the contact stays."""


class CheckoutDeleted(ShopifyModel):
    """``checkouts/delete``: an id and, in current API versions, the cart token and totals.

    Named like a checkout (its journey): by cart token, else token. The id alone names no deal."""

    identity: ClassVar[tuple[str, ...]] = ("cart_token", "token")

    id: MaybeId = None
    token: MaybeText = None
    cart_token: MaybeText = None
