"""Pydantic models of the Shopify webhook bodies (and Admin REST records) the product reads.

Shopify adds fields in every API version and sends nulls freely, so every model keeps unknown
fields (``extra="allow"``) and gives every mapped field a default: a record is rejected only when a
field we map holds a value of the wrong kind (a date that is not a date, an amount that is not a
number), or when its identity is missing. Field names are Shopify's, so the models double as the
documentation of what the product reads. Deletion payloads carry little more than ``id`` and have
models of their own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.types import (
    FinancialStatusField,
    FulfillmentStatusField,
    MaybeMoney,
    MaybeText,
    MaybeTimestamp,
    ProductStatusField,
    PublishedScopeField,
    TextId,
)


class ShopifyModel(BaseModel):
    """Base of every Shopify model: unknown fields kept, values validated on assignment too."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, frozen=False)

    def extra_fields(self) -> dict[str, Any]:
        """Fields Shopify sent that the product does not map (kept, never rejected)."""
        return dict(self.__pydantic_extra__ or {})


class Address(ShopifyModel):
    """A customer's (default) address, or an order's billing/shipping address."""

    id: int | None = None
    customer_id: int | None = None
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


class MarketingConsent(ShopifyModel):
    """``email_marketing_consent``: newer API versions' replacement of ``accepts_marketing``."""

    state: MaybeText = None
    opt_in_level: MaybeText = None
    consent_updated_at: MaybeTimestamp = None


class Customer(ShopifyModel):
    """``customers/create|update`` bodies, and the ``customer`` object inside orders/checkouts."""

    id: int
    email: MaybeText = None
    first_name: MaybeText = None
    last_name: MaybeText = None
    phone: MaybeText = None
    note: MaybeText = None
    tags: MaybeText = None
    state: MaybeText = None
    verified_email: bool | None = None
    tax_exempt: bool | None = None
    accepts_marketing: bool | None = None
    email_marketing_consent: MarketingConsent | None = None
    orders_count: int | None = None
    total_spent: MaybeMoney = None
    currency: MaybeText = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    default_address: Address | None = None
    addresses: list[Address] = Field(default_factory=list)

    def accepts_email_marketing(self) -> bool | None:
        """Accepts marketing, from whichever field this API version sends (C7)."""
        if self.accepts_marketing is not None:
            return self.accepts_marketing
        if self.email_marketing_consent is not None and self.email_marketing_consent.state:
            return self.email_marketing_consent.state == "subscribed"
        return None


class OrderLineItem(ShopifyModel):
    """A line of an order: what was bought, for how much (P2)."""

    id: int
    product_id: int | None = None
    variant_id: int | None = None
    sku: MaybeText = None
    title: MaybeText = None
    name: MaybeText = None
    variant_title: MaybeText = None
    vendor: MaybeText = None
    quantity: int = 0
    price: MaybeMoney = None
    total_discount: MaybeMoney = None
    grams: int | None = None


class Order(ShopifyModel):
    """``orders/create|updated|paid|fulfilled|cancelled`` bodies (D1, D2, D5, D6, D7)."""

    id: int
    name: MaybeText = None
    order_number: int | None = None
    number: int | None = None
    email: MaybeText = None
    contact_email: MaybeText = None
    phone: MaybeText = None
    token: MaybeText = None
    cart_token: MaybeText = None
    checkout_token: MaybeText = None
    checkout_id: int | None = None
    customer: Customer | None = None
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
    total_tax: MaybeMoney = None
    total_weight: int | None = None
    test: bool | None = None
    line_items: list[OrderLineItem] = Field(default_factory=list)
    billing_address: Address | None = None
    shipping_address: Address | None = None

    def buyer_email(self) -> str | None:
        """The email the order was placed with: the order's, else its customer's."""
        return self.email or self.contact_email or (self.customer.email if self.customer else None)


class CheckoutLineItem(ShopifyModel):
    """A line of a checkout. Checkout lines have a ``key`` rather than a numeric id."""

    key: MaybeText = None
    id: int | str | None = None
    product_id: int | None = None
    variant_id: int | None = None
    sku: MaybeText = None
    title: MaybeText = None
    variant_title: MaybeText = None
    vendor: MaybeText = None
    quantity: int = 0
    price: MaybeMoney = None
    line_price: MaybeMoney = None
    grams: int | None = None


class Checkout(ShopifyModel):
    """``checkouts/create|update`` bodies and abandoned checkouts from the Admin API (D3, D4)."""

    id: int | None = None
    token: str
    cart_token: MaybeText = None
    email: MaybeText = None
    phone: MaybeText = None
    name: MaybeText = None
    customer: Customer | None = None
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
    total_weight: int | None = None
    line_items: list[CheckoutLineItem] = Field(default_factory=list)
    billing_address: Address | None = None
    shipping_address: Address | None = None

    def buyer_email(self) -> str | None:
        """The contact email the buyer gave: the checkout's, else its customer's."""
        return self.email or (self.customer.email if self.customer else None)


class CartLineItem(ShopifyModel):
    """A line of an online-store cart."""

    id: int | None = None
    key: MaybeText = None
    product_id: int | None = None
    variant_id: int | None = None
    sku: MaybeText = None
    title: MaybeText = None
    vendor: MaybeText = None
    quantity: int = 0
    price: MaybeMoney = None
    line_price: MaybeMoney = None
    total_discount: MaybeMoney = None


class Cart(ShopifyModel):
    """``carts/create|update`` bodies (online-store carts only). Carts carry no buyer identity."""

    id: TextId
    token: MaybeText = None
    note: MaybeText = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    line_items: list[CartLineItem] = Field(default_factory=list)


class ProductImage(ShopifyModel):
    id: int | None = None
    src: MaybeText = None
    alt: MaybeText = None
    position: int | None = None


class Variant(ShopifyModel):
    """A product variant. P5: variants become HubSpot products linked to their parent."""

    id: int
    product_id: int | None = None
    title: MaybeText = None
    price: MaybeMoney = None
    compare_at_price: MaybeMoney = None
    sku: MaybeText = None
    barcode: MaybeText = None
    position: int | None = None
    option1: MaybeText = None
    option2: MaybeText = None
    option3: MaybeText = None
    inventory_quantity: int | None = None
    image_id: int | None = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None


class Product(ShopifyModel):
    """``products/create|update`` bodies (P1). Webhooks carry full variants for the first 100."""

    id: int
    title: MaybeText = None
    body_html: str | None = None
    handle: MaybeText = None
    product_type: MaybeText = None
    vendor: MaybeText = None
    tags: MaybeText = None
    status: ProductStatusField = None
    published_at: MaybeTimestamp = None
    published_scope: PublishedScopeField = None
    created_at: MaybeTimestamp = None
    updated_at: MaybeTimestamp = None
    variants: list[Variant] = Field(default_factory=list)
    images: list[ProductImage] = Field(default_factory=list)
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


class Deleted(ShopifyModel):
    """``orders/delete`` and ``products/delete``: just ``{id}``."""

    id: int


class CustomerDeleted(Deleted):
    """``customers/delete``: ``{id, ...}`` without email; C3 says the contact stays."""


class CheckoutDeleted(ShopifyModel):
    """``checkouts/delete``: an id and, in current API versions, the cart token and totals."""

    id: int | None = None
    token: MaybeText = None
    cart_token: MaybeText = None
