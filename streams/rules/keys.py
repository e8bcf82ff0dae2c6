"""Natural keys: how each HubSpot record is named in commands (never by a HubSpot id).

Contacts by normalised email (HubSpot's own unique key); deals, line items and products by custom
``hasUniqueValue`` properties holding Shopify identities, which the writer creates in the account.

X3 (several shops): every key but a contact's takes the shop's ``prefix``
(``RuleConfig.key_prefix``): empty for the primary shop (and in a single-shop deployment), so its
keys are what they always were; ``<domain>/`` for any other shop, so two shops with the same ids
or tokens never share a record. Contacts are keyed by email alone: HubSpot dedupes by email.

G1 (``SHOPSYNC_REDACTABLE``): a contact's key is its email's pseudonym instead, everywhere
(``streams.rules.contact_keys``); its ref then carries the email as ``address``, for HubSpot only.
"""

from __future__ import annotations

from config.rules import RuleConfig, shop_key_prefix
from schemas.commands import PropertyValue, RecordRef
from schemas.shopify import Cart, Checkout, CheckoutDeleted, Order, ShopifyModel

UNIQUE_PROPERTY: dict[str, str] = {
    "contacts": "email",
    "deals": "shopify_deal_key",
    "products": "shopify_product_key",
    "line_items": "shopify_line_item_key",
    "companies": "shopify_company_id",
}
"""The property each object type is upserted by (and identified by in an account's dump)."""
SHOP_PROPERTY = "shopify_shop_domain"
"""X3: the shop a record came from (deals, line items, products, Orders, Carts, companies), on
every record once shops are told apart (``shop_mark``)."""
CONTACT_SHOPS_PROPERTY = "shopify_shops"
"""X3: the shops a contact's records came from (``;``-separated domains), with several shops."""
COMMERCE_UNIQUE_PROPERTY: dict[str, str] = {"orders": "shopify_order_key", "carts": "shopify_cart_key"}
"""X1: the same for Orders and Carts, which exist only where orders are written (the tools that
read a whole account read them only then)."""


def normalize_email(email: str | None) -> str | None:
    """The contact key: trimmed and lower-cased; None when there is no usable address (C2)."""
    if email is None:
        return None
    cleaned = email.strip().lower()
    return cleaned if "@" in cleaned else None


def contact_ref(email: str, key: str | None = None) -> RecordRef:
    """The contact of ``email``; named by ``key`` instead when that is the email's pseudonym
    (G1), the email then riding along as the ref's ``address``."""
    if key is None or key == email:
        return RecordRef(object_type="contacts", id_property="email", id_value=email)
    return RecordRef(object_type="contacts", id_property="email", id_value=key, address=email)


def deal_ref(journey: str) -> RecordRef:
    return RecordRef(object_type="deals", id_property="shopify_deal_key", id_value=journey)


def order_ref(journey: str) -> RecordRef:
    """X1: a journey's HubSpot Order, keyed by the journey (HubSpot's external order id is not unique)."""
    return RecordRef(object_type="orders", id_property="shopify_order_key", id_value=journey)


def cart_ref(journey: str) -> RecordRef:
    """X1: a journey's HubSpot Cart (its abandoned checkout), keyed by the journey."""
    return RecordRef(object_type="carts", id_property="shopify_cart_key", id_value=journey)


def order_line_ref(journey: str, line_key: str) -> RecordRef:
    """An Order's own line item (a line item has one parent: never the deal's or the cart's)."""
    return line_item_ref(f"{journey}|order", line_key)


def cart_line_ref(journey: str, line_key: str) -> RecordRef:
    return line_item_ref(f"{journey}|cart", line_key)


def company_ref(company_id: int, prefix: str = "") -> RecordRef:
    """X2: a Shopify B2B company's HubSpot company, keyed by the Shopify company id."""
    return RecordRef(
        object_type="companies", id_property="shopify_company_id", id_value=f"{prefix}{company_id}"
    )


def line_item_ref(journey: str, line_key: str) -> RecordRef:
    return RecordRef(
        object_type="line_items", id_property="shopify_line_item_key", id_value=f"{journey}|{line_key}"
    )


def product_ref(product_id: int, prefix: str = "") -> RecordRef:
    return RecordRef(
        object_type="products", id_property="shopify_product_key", id_value=f"{prefix}product:{product_id}"
    )


def variant_ref(variant_id: int, prefix: str = "") -> RecordRef:
    return RecordRef(
        object_type="products", id_property="shopify_product_key", id_value=f"{prefix}variant:{variant_id}"
    )


def shop_prefix_of(shop_domain: PropertyValue, own_key: str) -> str:
    """The key prefix of a record carrying ``shopify_shop_domain`` whose own key is ``own_key``:
    how the writer finds the products of a line item in its shop. Every record names its shop once
    shops are told apart, the primary shop's too, but only the other shops' keys carry the prefix,
    so the line item's own key says which it is."""
    if not isinstance(shop_domain, str) or not shop_domain:
        return ""
    prefix = shop_key_prefix(shop_domain)
    return prefix if own_key.startswith(prefix) else ""


def shop_mark(prefix: str, config: RuleConfig) -> dict[str, PropertyValue]:
    """X3: the ``shopify_shop_domain`` a record of the shop with key ``prefix`` carries: on every
    deal, line item, product, Order, Cart and company once shops are told apart (a primary shop
    is set), so HubSpot's lists and reports can tell the shops apart; none in a single-shop
    deployment, whose records keep exactly their properties. The prefix is the shop's domain, or
    empty for the primary shop."""
    if config.primary_shop is None:
        return {}
    return {SHOP_PROPERTY: prefix.removesuffix("/") if prefix else config.primary_shop}


def split_key(key: str) -> tuple[str, str]:
    """(prefix, the key without it): an entity key of any shop (``b.myshopify.com/42``: the
    prefix ``b.myshopify.com/`` and ``42``; the primary shop's ``42``: ``""`` and ``42``)."""
    prefix, slash, rest = key.rpartition("/")
    return (f"{prefix}{slash}", rest)


def is_variant_key(product_key: str) -> bool:
    """Whether a ``shopify_product_key`` names a variant synced as a product (P5), in any shop."""
    return split_key(product_key)[1].startswith("variant:")


def journey_key(record: ShopifyModel, prefix: str = "") -> str | None:
    """The journey of a record, in its shop (see :func:`bare_journey_key`)."""
    key = bare_journey_key(record)
    return f"{prefix}{key}" if key is not None else None


def bare_journey_key(record: ShopifyModel) -> str | None:
    """The deal key of a cart, checkout or order: its cart token, else checkout token, else id.

    Shopify links the records of one purchase by ``cart_token`` (carts, checkouts, orders) and
    ``checkout_token`` (orders), so the cart, its checkouts and the order share one key: one deal.
    """
    if isinstance(record, Cart):
        return f"cart:{record.token or record.id}"
    if isinstance(record, Checkout | CheckoutDeleted):
        if record.cart_token:
            return f"cart:{record.cart_token}"
        return f"checkout:{record.token}" if record.token else None
    if isinstance(record, Order):
        if record.cart_token:
            return f"cart:{record.cart_token}"
        if record.checkout_token:
            return f"checkout:{record.checkout_token}"
        return f"order:{record.id}"
    return None
