"""The store the sandbox serves, generated lazily from the project's sample store
(``devtools.samplestore.happenings``: the same seed and size give the same store the webhook path
sees) and, optionally, Shopify's REST fixtures read in place.

Nothing is held but the catalogue (a handful of products): every pass over customers, orders or
abandoned checkouts replays the sample store's events customer by customer and folds each one's
events into its final records, so 100,000 customers stream in constant memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from devtools import samplestore
from shopify_sandbox import b2b, convert
from shopify_sandbox.convert import JSON

Kind = Literal["customers", "orders", "products", "abandonedCheckouts", "companies"]
KINDS: tuple[Kind, ...] = ("customers", "orders", "products", "abandonedCheckouts", "companies")


@dataclass
class _Journey:
    """One customer's final records: the customer, its orders (deleted ones gone) and checkouts."""

    customer: JSON
    orders: dict[int, JSON] = field(default_factory=dict)
    checkouts: dict[str, JSON] = field(default_factory=dict)


@dataclass(frozen=True)
class ShopData:
    """``customers`` sample customers (seed ``seed``, ``repeat_orders`` as the sample store's),
    plus the fixtures in ``fixtures_dir`` (the ``rest/`` folder of shared/fixtures/shopify)."""

    customers: int = 20
    seed: int = 7
    fixtures_dir: Path | None = None
    repeat_orders: int = 0
    """Later purchases of every customer who bought (``samplestore.happenings``)."""
    companies: int = 0
    """B2B companies made from the first customers (``shopify_sandbox.b2b``)."""

    @cached_property
    def _products_rest(self) -> list[JSON]:
        found = [
            body for _, topic, body in samplestore.happenings(0, self.seed) if topic == "products/create"
        ]
        return found + self._fixture("products.json", "products") + self._fixture("product.json", "product")

    @cached_property
    def products(self) -> list[JSON]:
        return [convert.product(p) for p in self._products_rest]

    @cached_property
    def catalogue(self) -> convert.Catalogue:
        return convert.catalogue(self.products)

    def _fixture(self, name: str, key: str) -> list[JSON]:
        if self.fixtures_dir is None:
            return []
        path = self.fixtures_dir / name
        if not path.exists():
            return []
        data = json.loads(path.read_text())
        found = data.get(key) if isinstance(data, dict) else data  # products.json is a bare list
        return list(found) if isinstance(found, list) else [found] if isinstance(found, dict) else []

    def _journeys(self) -> Iterator[_Journey]:
        current: _Journey | None = None
        for _, topic, body in samplestore.happenings(
            self.customers, self.seed, repeat_orders=self.repeat_orders
        ):
            if topic == "customers/create":
                if current is not None:
                    yield current
                current = _Journey(body)
            elif current is None:
                continue
            elif topic == "orders/delete":
                current.orders.pop(body["id"], None)
            elif topic.startswith("orders/"):
                current.orders[body["id"]] = body
            elif topic.startswith("checkouts/"):
                current.checkouts[body["token"]] = body
        if current is not None:
            yield current

    @staticmethod
    def _abandoned(checkout: JSON) -> bool:
        """Shopify counts a checkout abandoned once the buyer gave contact details and did not
        complete it (REFERENCE.md)."""
        return checkout.get("completed_at") is None and bool(checkout.get("email") or checkout.get("phone"))

    def _customer_records(self, journey: _Journey) -> tuple[JSON, list[JSON], list[JSON]]:
        orders = [convert.order(o, self.catalogue) for o in journey.orders.values()]
        buyer = convert.customer(journey.customer, orders)
        # Without the back reference (customer -> orders -> customer): no reference cycles, so
        # each record is freed as soon as it is written instead of at the next cyclic collection.
        seen_from_order = {**buyer, "orders": []}
        purchasing = self._b2b_buyers.get(buyer["id"]) or {"__typename": "Customer", **seen_from_order}
        for o in orders:
            o["customer"] = seen_from_order
            o["purchasingEntity"] = purchasing
        checkouts = [
            convert.abandoned_checkout(c, self.catalogue, seen_from_order)
            for c in journey.checkouts.values()
            if self._abandoned(c)
        ]
        return buyer, orders, checkouts

    @cached_property
    def _b2b_buyers(self) -> dict[str, JSON]:
        """The purchasing company of each company contact's orders, by customer gid: a company
        contact's orders are placed for its company at its first location (``b2b``)."""
        if self.companies <= 0:
            return {}
        plain = (convert.customer(journey.customer) for journey in self._journeys())
        found: dict[str, JSON] = {}
        for company in b2b.companies(plain, self.companies):
            own = {k: v for k, v in company.items() if k not in ("contacts", "locations", "mainContact")}
            for contact in company["contacts"]:
                found[contact["customer"]["id"]] = {
                    "__typename": "PurchasingCompany", "company": own, "contact": contact,
                    "location": company["locations"][0],
                }  # fmt: skip
        return found

    def nodes(self, kind: Kind) -> Iterator[JSON]:
        """Every ``kind`` record as the GraphQL Admin API returns it, in id-independent but
        stable order (the sample store's generation order, fixtures first)."""
        if kind == "products":
            yield from self.products
            return
        if kind == "companies":
            yield from b2b.companies((convert.customer(j.customer) for j in self._journeys()), self.companies)
            return
        yield from self._fixture_nodes(kind)
        for journey in self._journeys():
            buyer, orders, checkouts = self._customer_records(journey)
            if kind == "customers":
                yield buyer
            elif kind == "orders":
                yield from orders
            else:
                yield from checkouts

    def _fixture_nodes(self, kind: Kind) -> Iterator[JSON]:
        if kind == "customers":
            yield from (convert.customer(c) for c in self._fixture("customer.json", "customer"))
        elif kind == "orders":
            bodies = self._fixture("orders.json", "orders") + self._fixture("order.json", "order")
            unique = {o["id"]: o for o in bodies}  # order.json repeats orders.json's order
            yield from (convert.order(o, self.catalogue) for o in unique.values())
        elif kind == "abandonedCheckouts":
            bodies = self._fixture("checkouts.json", "checkouts")
            yield from (convert.abandoned_checkout(c, self.catalogue) for c in bodies if self._abandoned(c))

    def find(self, node_id: str) -> JSON | None:
        """The record with this gid (a scan: lookups by id are for tests and small reads)."""
        kind = {
            "Customer": "customers", "Order": "orders", "Product": "products",
            "AbandonedCheckout": "abandonedCheckouts", "Company": "companies",
        }.get(node_id.removeprefix("gid://shopify/").partition("/")[0])  # fmt: skip
        if kind is None:
            return self.catalogue.get(node_id)
        return next((n for n in self.nodes(kind) if n["id"] == node_id), None)  # type: ignore[arg-type]
