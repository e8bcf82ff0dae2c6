"""A deterministic sample Shopify store: customers, products with variants, carts, checkouts, orders.

Tests, the demo and the benchmarks build their payloads here, so no test hand-writes a Shopify
body. The bodies have the shape of Shopify's own webhook samples (../shared/fixtures/shopify):
same field names, decimal strings for money, offsets on timestamps, nulls where Shopify sends
them. The same seed always yields the same store and the same event stream, byte for byte.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

SHOP_DOMAIN = "sample-store.myshopify.com"
API_VERSION = "2026-04"
DEFAULT_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

FIRST_NAMES = [
    "Ada",
    "Grace",
    "Linus",
    "Margaret",
    "Alan",
    "Barbara",
    "Ken",
    "Radia",
    "Dennis",
    "Frances",
    "Edsger",
    "Hedy",
    "Tim",
    "Katherine",
    "Guido",
    "Anita",
    "José",
    "Zoë",
]
LAST_NAMES = [
    "Lovelace",
    "Hopper",
    "Torvalds",
    "Hamilton",
    "Turing",
    "Liskov",
    "Thompson",
    "Perlman",
    "Ritchie",
    "Allen",
    "Dijkstra",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "van Rossum",
    "Borg",
    "Müller",
    "Ñúñez",
]
CITIES = [
    ("Ottawa", "Ontario", "Canada", "K2P 1L4"),
    ("Louisville", "Kentucky", "United States", "40202"),
    ("Lyon", "Auvergne-Rhône-Alpes", "France", "69002"),
    ("Berlin", "Berlin", "Germany", "10115"),
    ("Austin", "Texas", "United States", "78701"),
]
PRODUCTS = [("Aviator sunglasses", "Accessories", "Acme", ["Black", "Gold"], "89.99"),
            ("Example T-Shirt", "Shirts", "Acme", ["Small", "Medium", "Large"], "19.99"),
            ("IPod Nano - 8GB", "Cult Products", "Apple", ["Pink", "Blue"], "199.00"),
            ("Trail running shoes", "Shoes", "Fleetfoot", ["40", "42", "44"], "129.50"),
            ("Espresso beans 1kg", "Coffee", "Bean & Co", ["Whole", "Ground"], "24.00"),
            ("Wool beanie", "Hats", "Knitwise", ["Grey"], "15.00")]  # fmt: skip


def email_for(first: str, last: str, n: int) -> str:
    """An ASCII address from a (possibly accented) name, as most shops' customers have."""
    plain = unicodedata.normalize("NFKD", f"{first}.{last}.{n}").encode("ascii", "ignore").decode()
    return plain.lower().replace(" ", "") + "@example.com"


def ts(at: datetime) -> str:
    """A Shopify-style timestamp: local offset, no fractional seconds."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def stable_id(*parts: object, digits: int = 12) -> int:
    """A deterministic numeric id (Shopify ids are large integers)."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()
    value: int = int(digest[:15], 16) % (10**digits) + 10**digits
    return value


def token(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:32]


def address(customer_id: int, first: str, last: str, city: tuple[str, str, str, str]) -> dict[str, Any]:
    name, province, country, zip_code = city
    return {
        "id": stable_id("address", customer_id), "customer_id": customer_id,
        "first_name": first, "last_name": last, "company": None,
        "address1": f"{stable_id('street', customer_id) % 400 + 1} Market Street", "address2": None,
        "city": name, "province": province, "country": country, "zip": zip_code,
        "phone": "555-0100", "name": f"{first} {last}", "province_code": None,
        "country_code": None, "country_name": country, "default": True,
    }  # fmt: skip


def customer_body(
    customer_id: int, email: str | None, first: str, last: str, at: datetime, *,
    city: tuple[str, str, str, str] = CITIES[0], phone: str | None = None, orders_count: int = 0,
    tags: str = "", accepts_marketing: bool = False, note: str | None = None,
    updated_at: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A ``customers/create|update`` body."""
    return {
        "id": customer_id, "email": email, "created_at": ts(at),
        "updated_at": ts(updated_at or at), "first_name": first, "last_name": last,
        "orders_count": orders_count, "state": "enabled", "total_spent": "0.00",
        "last_order_id": None, "note": note, "verified_email": email is not None,
        "multipass_identifier": None, "tax_exempt": False, "tags": tags, "currency": "USD",
        "phone": phone, "accepts_marketing": accepts_marketing,
        "email_marketing_consent": {
            "state": "subscribed" if accepts_marketing else "not_subscribed",
            "opt_in_level": "single_opt_in", "consent_updated_at": None,
        },
        "addresses": [address(customer_id, first, last, city)], "tax_exemptions": [],
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
        "default_address": address(customer_id, first, last, city),
    }  # fmt: skip


def product_body(
    product_id: int,
    spec: tuple[str, str, str, list[str], str],
    at: datetime,
    *,
    updated_at: datetime | None = None,
    price: str | None = None,
) -> dict[str, Any]:
    """A ``products/create|update`` body with one variant per option value."""
    title, product_type, vendor, options, base_price = spec
    handle = title.lower().replace(" ", "-")
    variants = [
        {
            "id": stable_id("variant", product_id, opt), "product_id": product_id,
            "title": opt, "price": price or base_price, "compare_at_price": None,
            "sku": f"{handle[:8].upper()}-{opt.upper()[:4]}", "barcode": None, "position": i + 1,
            "option1": opt, "option2": None, "option3": None, "inventory_policy": "deny",
            "inventory_quantity": 10 + i, "taxable": True, "image_id": None,
            "created_at": ts(at), "updated_at": ts(updated_at or at),
            "admin_graphql_api_id": f"gid://shopify/ProductVariant/{stable_id('variant', product_id, opt)}",
        }
        for i, opt in enumerate(options)
    ]  # fmt: skip
    image = {"id": stable_id("image", product_id), "position": 1, "alt": title,
             "src": f"https://cdn.shopify.com/s/files/sample/{handle}.png"}  # fmt: skip
    return {
        "id": product_id, "title": title, "body_html": f"<p>{title} by {vendor}.</p>",
        "vendor": vendor, "product_type": product_type, "handle": handle, "status": "active",
        "created_at": ts(at), "updated_at": ts(updated_at or at), "published_at": ts(at),
        "published_scope": "web", "tags": f"{product_type.lower()}, sample", "template_suffix": None,
        "variants": variants, "options": [{"name": "Option", "values": options}],
        "images": [image], "image": image,
        "admin_graphql_api_id": f"gid://shopify/Product/{product_id}",
    }  # fmt: skip


@dataclass(frozen=True)
class Line:
    """One bought or carted item: a product's variant and a quantity."""

    product: dict[str, Any]
    variant: dict[str, Any]
    quantity: int

    @property
    def price(self) -> Decimal:
        return Decimal(self.variant["price"])


def _totals(lines: list[Line], discount: Decimal = Decimal("0.00")) -> dict[str, str]:
    subtotal = sum((ln.price * ln.quantity for ln in lines), Decimal("0.00"))
    tax = (subtotal - discount) * Decimal("0.06")
    tax = tax.quantize(Decimal("0.01"))
    return {
        "total_line_items_price": f"{subtotal:.2f}",
        "subtotal_price": f"{subtotal - discount:.2f}",
        "total_discounts": f"{discount:.2f}",
        "total_tax": f"{tax:.2f}",
        "total_price": f"{subtotal - discount + tax:.2f}",
    }


def cart_body(cart_token: str, lines: list[Line], at: datetime, created: datetime) -> dict[str, Any]:
    """A ``carts/create|update`` body."""
    return {
        "id": cart_token, "token": cart_token, "note": None,
        "created_at": ts(created), "updated_at": ts(at),
        "line_items": [
            {
                "id": ln.variant["id"], "key": f"{ln.variant['id']}:{cart_token[:8]}",
                "product_id": ln.product["id"], "variant_id": ln.variant["id"],
                "sku": ln.variant["sku"], "title": f"{ln.product['title']} - {ln.variant['title']}",
                "vendor": ln.product["vendor"], "quantity": ln.quantity,
                "price": ln.variant["price"], "original_price": ln.variant["price"],
                "line_price": f"{ln.price * ln.quantity:.2f}", "total_discount": "0.00",
                "discounts": [], "gift_card": False, "grams": 200, "properties": None,
            }
            for ln in lines
        ],
    }  # fmt: skip


def checkout_body(
    checkout_token: str, cart_token: str, lines: list[Line], at: datetime, created: datetime, *,
    customer: dict[str, Any] | None, email: str | None, completed_at: datetime | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A ``checkouts/create|update`` body (``email`` None: contact details not given yet)."""
    body: dict[str, Any] = {
        "id": stable_id("checkout", checkout_token), "token": checkout_token,
        "cart_token": cart_token, "email": email, "gateway": None,
        "buyer_accepts_marketing": False, "created_at": ts(created), "updated_at": ts(at),
        "landing_site": "/products/sample", "note": None, "note_attributes": [],
        "referring_site": "https://www.google.com/", "shipping_lines": [], "taxes_included": False,
        "total_weight": 200 * sum(ln.quantity for ln in lines), "currency": "USD",
        "completed_at": ts(completed_at) if completed_at else None, "closed_at": None,
        "user_id": None, "location_id": None, "source_identifier": None, "source_url": None,
        "device_id": None, "phone": None, "customer_locale": "en",
        "name": f"#{stable_id('checkout', checkout_token)}", "source": None,
        "abandoned_checkout_url": f"https://{SHOP_DOMAIN}/checkouts/{checkout_token}/recover",
        "discount_codes": [], "tax_lines": [], "source_name": "web", "presentment_currency": "USD",
        "line_items": [
            {
                "key": token("line", checkout_token, ln.variant["id"]),
                "product_id": ln.product["id"], "variant_id": ln.variant["id"],
                "sku": ln.variant["sku"], "title": ln.product["title"],
                "variant_title": ln.variant["title"], "vendor": ln.product["vendor"],
                "quantity": ln.quantity, "price": ln.variant["price"],
                "line_price": f"{ln.price * ln.quantity:.2f}", "grams": 200,
                "applied_discounts": [], "discount_allocations": [], "properties": None,
                "requires_shipping": True, "taxable": True, "gift_card": False,
            }
            for ln in lines
        ],
        "customer": customer,
        **_totals(lines),
    }  # fmt: skip
    return body


def order_body(
    order_id: int, number: int, lines: list[Line], at: datetime, *,
    customer: dict[str, Any] | None, email: str | None, checkout_token: str | None,
    cart_token: str | None, financial_status: str = "paid", fulfillment_status: str | None = None,
    cancelled_at: datetime | None = None, cancel_reason: str | None = None,
    updated_at: datetime | None = None, discount: str = "0.00",
) -> dict[str, Any]:  # fmt: skip
    """An ``orders/*`` body."""
    return {
        "id": order_id, "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{1000 + number}", "number": number, "order_number": 1000 + number,
        "email": email, "contact_email": email, "phone": None,
        "token": token("order", order_id), "cart_token": cart_token,
        "checkout_token": checkout_token,
        "checkout_id": stable_id("checkout", checkout_token) if checkout_token else None,
        "buyer_accepts_marketing": False, "cancel_reason": cancel_reason,
        "cancelled_at": ts(cancelled_at) if cancelled_at else None, "closed_at": None,
        "confirmed": True, "created_at": ts(at), "processed_at": ts(at),
        "updated_at": ts(updated_at or at), "currency": "USD", "presentment_currency": "USD",
        "financial_status": financial_status, "fulfillment_status": fulfillment_status,
        "landing_site": "/products/sample?utm_source=newsletter", "landing_site_ref": None,
        "referring_site": "https://www.google.com/", "source_name": "web", "note": None,
        "tags": "", "taxes_included": False, "test": False,
        "total_weight": 200 * sum(ln.quantity for ln in lines),
        "processing_method": "direct", "customer_locale": "en", "note_attributes": [],
        "discount_codes": [], "payment_gateway_names": ["bogus"],
        "line_items": [
            {
                "id": stable_id("order-line", order_id, ln.variant["id"]),
                "admin_graphql_api_id": "gid://shopify/LineItem/"
                + str(stable_id("order-line", order_id, ln.variant["id"])),
                "product_id": ln.product["id"], "variant_id": ln.variant["id"],
                "sku": ln.variant["sku"], "title": ln.product["title"],
                "name": f"{ln.product['title']} - {ln.variant['title']}",
                "variant_title": ln.variant["title"], "vendor": ln.product["vendor"],
                "quantity": ln.quantity, "current_quantity": ln.quantity,
                "price": ln.variant["price"], "total_discount": "0.00", "grams": 200,
                "fulfillment_status": fulfillment_status, "gift_card": False, "taxable": True,
                "requires_shipping": True, "product_exists": True, "properties": [],
                "tax_lines": [], "duties": [], "discount_allocations": [],
            }
            for ln in lines
        ],
        "customer": customer, "billing_address": (customer or {}).get("default_address"),
        "shipping_address": (customer or {}).get("default_address"),
        "fulfillments": [], "refunds": [], "shipping_lines": [],
        **_totals(lines, Decimal(discount)),
    }  # fmt: skip


FIXED_JOURNEYS: list[tuple[str, str | None, bool]] = [
    ("buy", "fulfilled", True),
    ("abandon", None, True),
    ("recover", "paid", True),
    ("no-email-checkout", None, True),
    ("buy", "cancelled", True),
    ("buy", "deleted", True),
    ("buy", "paid", False),  # a customer without an email: the deal has no contact (D7)
]
"""The first customers' journeys, so that even a small store has one of each kind: fulfilled,
abandoned, recovered, never-promoted, cancelled, deleted, and bought without an email."""


@dataclass(frozen=True)
class SampleEvent:
    """One thing that happens in the store: a webhook topic and body at an instant."""

    at: datetime
    topic: str
    body: dict[str, Any]
    event_id: str
    source: str = "webhook"
    shop: str | None = None
    """X3: the shop it happens in; None: the one store (``SHOP_DOMAIN``, or simulate's own)."""


@dataclass
class SampleStore:
    """The generated store and its event stream, in time order (ties in generation order)."""

    events: list[SampleEvent] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)
    products: list[dict[str, Any]] = field(default_factory=list)

    shop: str | None = None
    """X3: the shop every event of this store happens in (None: the one store)."""

    def add(self, at: datetime, topic: str, body: dict[str, Any], source: str = "webhook") -> str:
        event_id = str(stable_id("event", len(self.events), topic, body.get("id"), digits=10))
        self.events.append(SampleEvent(at, topic, body, event_id, source, self.shop))
        return event_id

    def ordered(self) -> list[SampleEvent]:
        return sorted(self.events, key=lambda e: e.at)


def generate(
    customers: int = 20,
    seed: int = 7,
    start: datetime = DEFAULT_START,
    shop: str | None = None,
    *,
    repeat_orders: int = 0,
) -> SampleStore:
    """A store with ``customers`` buyers over a few simulated days (:func:`happenings`, kept)."""
    store = SampleStore(shop=shop)
    for at, topic, body in happenings(customers, seed, start, repeat_orders=repeat_orders):
        if topic == "products/create":
            store.products.append(body)
        elif topic == "customers/create":
            store.customers.append(body)
        store.add(at, topic, body)
    return store


def happenings(
    customers: int = 20, seed: int = 7, start: datetime = DEFAULT_START, *, repeat_orders: int = 0
) -> Iterator[tuple[datetime, str, dict[str, Any]]]:
    """The store's events one at a time, in generation order (a customer's events together,
    after the products), so that a large store can be streamed without being held.

    Journeys: the first customers follow :data:`FIXED_JOURNEYS` (one of each kind), the rest are
    chosen by the seeded generator: buy straight away; abandon a checkout; abandon and come back
    (recovered); start a checkout without an email (never promoted, D4). About 8% of customers
    have no email (D7). Orders are created pending and then paid; some are later fulfilled,
    cancelled or deleted. With ``repeat_orders``, each customer who bought comes back that many
    times, a week apart, through a checkout of its own (drawn from a generator of its own, so the
    rest of the store stays the same): 100,000 customers with ``repeat_orders=3`` place about
    245,000 orders.
    """
    rng = random.Random(seed)
    products = [
        product_body(stable_id("product", seed, i), spec, start - timedelta(days=30))
        for i, spec in enumerate(PRODUCTS)
    ]
    for body in products:
        yield start - timedelta(days=30), "products/create", body
    order_number = 0
    for i in range(customers):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        cid = stable_id("customer", seed, i)
        fixed = FIXED_JOURNEYS[i] if i < len(FIXED_JOURNEYS) else None
        has_address = rng.random() > 0.08 if fixed is None else fixed[2]
        email = email_for(first, last, i) if has_address else None
        at = start + timedelta(minutes=rng.randint(0, 3 * 24 * 60))
        customer = customer_body(cid, email, first, last, at, city=rng.choice(CITIES),
                                 accepts_marketing=rng.random() < 0.4)  # fmt: skip
        yield at, "customers/create", customer
        journey = (
            rng.choice(["buy", "buy", "abandon", "recover", "no-email-checkout"])
            if fixed is None
            else fixed[0]
        )
        lines = [
            Line(p, rng.choice(p["variants"]), rng.randint(1, 3))
            for p in rng.sample(products, rng.randint(1, 3))
        ]
        cart = token("cart", seed, i)
        checkout = token("checkout", seed, i)
        t = at + timedelta(minutes=5)
        yield (t, "carts/create", cart_body(cart, lines, t, t))
        t += timedelta(minutes=3)
        has_email = journey != "no-email-checkout" and email is not None
        yield (t, "checkouts/create", checkout_body(checkout, cart, lines, t, t,
                  customer=customer if has_email else None, email=email if has_email else None))  # fmt: skip
        if journey in ("abandon", "no-email-checkout"):
            continue
        if journey == "recover":
            t += timedelta(hours=rng.randint(30, 40))
        else:
            t += timedelta(minutes=4)
        order_number += 1
        oid = stable_id("order", seed, i)
        order = order_body(oid, order_number, lines, t, customer=customer, email=email,
                           checkout_token=checkout, cart_token=cart, financial_status="pending")  # fmt: skip
        yield (t, "checkouts/update", checkout_body(checkout, cart, lines, t, at + timedelta(minutes=8),
                  customer=customer, email=email, completed_at=t))  # fmt: skip
        yield (t, "orders/create", order)
        paid_at = t + timedelta(minutes=1)
        paid = order_body(oid, order_number, lines, t, customer=customer, email=email,
                          checkout_token=checkout, cart_token=cart, updated_at=paid_at)  # fmt: skip
        yield (paid_at, "orders/paid", paid)
        fate = (
            rng.random()
            if fixed is None
            else {"fulfilled": 0.0, "cancelled": 0.55, "deleted": 0.62}.get(str(fixed[1]), 0.9)
        )
        if fate < 0.5:
            t2 = t + timedelta(days=1)
            done = order_body(oid, order_number, lines, t, customer=customer, email=email,
                              checkout_token=checkout, cart_token=cart, fulfillment_status="fulfilled",
                              updated_at=t2)  # fmt: skip
            yield (t2, "orders/fulfilled", done)
        elif fate < 0.6:
            t2 = t + timedelta(hours=6)
            cancelled = order_body(oid, order_number, lines, t, customer=customer, email=email,
                                   checkout_token=checkout, cart_token=cart, financial_status="refunded",
                                   cancelled_at=t2, cancel_reason="customer", updated_at=t2)  # fmt: skip
            yield (t2, "orders/cancelled", cancelled)
        elif fate < 0.65:
            yield (t + timedelta(hours=8), "orders/delete", {"id": oid})
        for k in range(1, repeat_orders + 1):
            order_number += 1
            yield from _repeat_order(products, customer, seed, i, k, order_number, t + timedelta(weeks=k))


def _repeat_order(
    products: list[dict[str, Any]],
    customer: dict[str, Any],
    seed: int,
    i: int,
    k: int,
    number: int,
    t: datetime,
) -> Iterator[tuple[datetime, str, dict[str, Any]]]:
    """A returning customer's ``k``-th later purchase: checkout, order, payment."""
    rng = random.Random(f"{seed}/{i}/repeat/{k}")
    lines = [
        Line(p, rng.choice(p["variants"]), rng.randint(1, 3)) for p in rng.sample(products, rng.randint(1, 3))
    ]
    cart, checkout, email = token("cart", seed, i, k), token("checkout", seed, i, k), customer["email"]
    yield t, "checkouts/create", checkout_body(checkout, cart, lines, t, t, customer=customer, email=email)
    t += timedelta(minutes=4)
    yield t, "checkouts/update", checkout_body(checkout, cart, lines, t, t - timedelta(minutes=4),
                                               customer=customer, email=email, completed_at=t)  # fmt: skip
    oid = stable_id("order", seed, i, k)
    placed = {"customer": customer, "email": email, "checkout_token": checkout, "cart_token": cart}
    yield t, "orders/create", order_body(oid, number, lines, t, financial_status="pending", **placed)
    paid_at = t + timedelta(minutes=1)
    yield paid_at, "orders/paid", order_body(oid, number, lines, t, updated_at=paid_at, **placed)


def shop_domain(n: int) -> str | None:
    """The domain of the ``n``-th generated shop (from 1): the first is the one store (None)."""
    return None if n == 1 else f"sample-store-{n}.myshopify.com"


def several_shops(
    shops: int, customers: int = 20, seed: int = 7, start: datetime = DEFAULT_START
) -> SampleStore:
    """X3: ``shops`` stores in one event stream, as dev stores seeded from the same sample data
    are: the same product, variant, customer, order ids, cart and checkout tokens, emails and
    even event ids in every shop (so every customer is in every shop, by email), each shop's
    events 7 hours after the one before's. The first shop is the one store (no domain of its own:
    the primary shop), the others ``sample-store-<n>.myshopify.com``."""
    merged = SampleStore()
    for n in range(1, shops + 1):
        store = generate(customers, seed, start + timedelta(hours=7 * (n - 1)), shop=shop_domain(n))
        merged.events += store.events
        merged.customers += store.customers
        merged.products += store.products
    return merged


def scenario_lines(
    store: SampleStore,
    tick_every: timedelta = timedelta(hours=12),
    tail: timedelta = timedelta(days=3),
    *,
    seed: int | None = None,
    delete_in_hubspot: int = 0,
) -> list[dict[str, Any]]:
    """The store as ``shopsync simulate`` scenario lines: its events in time order, each with its
    event id (so a repeated event is a duplicate delivery), and a tick every ``tick_every`` from
    the first customer event on (nothing is due before), and for ``tail`` after the last event.

    With ``seed``, what real webhooks do is mixed in: about 5% of deliveries are sent twice (a
    Shopify retry, same event id) and about 5% of neighbouring deliveries swap places (out of
    order). ``delete_in_hubspot`` contacts are then deleted in HubSpot after the last event (C4).
    """
    rng = random.Random(seed)
    events = store.ordered()
    if not events:
        return []
    lines: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for event in events:
        shop = {"shop": event.shop} if event.shop else {}  # X3: a second shop's line names it
        if event.source == "import":
            deliveries.append(
                {"at": event.at, "import": event.topic.partition("/")[0], "body": event.body, **shop}
            )
        else:
            deliveries.append({"at": event.at, "shopify": event.topic, "body": event.body,
                               "headers": {"X-Shopify-Event-Id": event.event_id}, **shop})  # fmt: skip
            if seed is not None and rng.random() < 0.05:
                deliveries.append(dict(deliveries[-1]))  # Shopify's retry of the same event
    if seed is not None:
        for i in range(1, len(deliveries)):
            same_hour = deliveries[i]["at"] - deliveries[i - 1]["at"] < timedelta(hours=1)
            if same_hour and rng.random() < 0.05:  # late delivery: swap with its neighbour
                deliveries[i - 1], deliveries[i] = deliveries[i], deliveries[i - 1]
    clock: datetime | None = None
    latest = events[0].at
    for delivery in deliveries:
        latest = max(latest, delivery["at"])
        if clock is None and "products/" not in str(delivery.get("shopify", "products/")):
            clock = latest
        while clock is not None and clock + tick_every <= latest:
            clock += tick_every
            lines.append({"at": clock.isoformat(), "tick": True})
        lines.append({**delivery, "at": latest.isoformat()})  # "at" never goes backwards
    clock = clock or latest
    end = clock + tail
    emails = [c["email"] for c in store.customers if c.get("email")]
    for email in rng.sample(emails, min(delete_in_hubspot, len(emails))):
        latest += timedelta(minutes=1)
        lines.append({"at": latest.isoformat(), "hubspot": "contact.deletion", "email": email})
    while clock < end:
        clock += tick_every
        if clock >= latest:
            lines.append({"at": clock.isoformat(), "tick": True})
    return lines
