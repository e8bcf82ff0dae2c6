"""The ecommerce reports (SPEC E1): pure arithmetic over what each deal holds.

HubSpot's "Ecommerce" dashboard template has eight reports over the deals, line items and contacts
the integration syncs. The product computes the same eight itself, from the same values: each
journey's deal as the rules last emitted it (``streams.rules.journeys.DealView``) is reduced to its
:class:`DealFacts`, and :func:`compute` folds any set of facts into the reports. The very same
:func:`facts_of` reads a deal out of a HubSpot account (``devtools.account_reports``), so the
reports of a stream and of the account it produced can be compared number for number.

The arithmetic, per shop currency (``shopify_currency``), by day (UTC) and in total:

1. **Revenue**: the net total of every order that counts. An order is a deal in a stage past the
   checkout (Checkout Completed, Processed, Shipped); a Cancelled deal (cancelled, voided, expired
   or deleted in Shopify, D5) leaves revenue and the order count. Net is Shopify's
   ``current_total_price`` (after refunds, returns and edits), else the total price; a
   ``refunded`` order without it counts 0. By the order's creation day.
2. **Orders**: how many orders count (cancelled ones are counted apart).
3. **Average order value**: revenue / orders.
4. **Abandoned checkouts**: deals that were abandoned (``shopify_abandoned_at``), count and value
   (the deal's amount), by the day of abandonment.
5. **Recovered checkouts**: abandoned ones later completed (``shopify_recovered_checkout``), count,
   value and rate = recovered / abandoned, by the day of abandonment (a cohort).
6. **New versus returning customers**: a customer (by Shopify customer id) is new on their first
   counted order and returning on each later one; orders without a customer id are guests.
7. **Top products and variants** by revenue (``price x quantity - shopify_total_discount`` of each
   line) and by units, over the counted orders (refunds are not known per line: product revenue is
   before refunds).
8. **Repeat-purchase rate** (customers with two or more counted orders / customers with one or
   more) and **customer lifetime value** (net revenue of identified customers / customers), as of
   the end of each day and in total.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

ORDER_STAGES = frozenset({"Checkout Completed", "Processed", "Shipped"})
CANCELLED = "Cancelled"
TOP = 10
UNKNOWN = "unknown"
CENT = Decimal("0.01")
Props = Mapping[str, str | None]


class LineFacts(BaseModel):
    """One line item of a deal, as the reports need it."""

    model_config = ConfigDict(frozen=True)

    product: str  # ``product:<id>``, else the title
    variant: str | None = None  # ``variant:<id>``
    title: str | None = None
    quantity: int = 0
    revenue: Decimal = Decimal(0)


class DealFacts(BaseModel):
    """What the reports read of one deal (a journey). ``exists`` False: the deal is gone (D4, an
    archive), so it counts nowhere; kept as a row so a stream can say so."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["deal-facts"] = "deal-facts"
    key: str
    exists: bool = True
    currency: str = UNKNOWN
    stage: str | None = None
    created_at: datetime | None = None
    amount: Decimal | None = None
    net: Decimal | None = None
    abandoned_at: datetime | None = None
    recovered: bool = False
    customer: str | None = None  # the Shopify customer id, never an email
    lines: tuple[LineFacts, ...] = ()

    @property
    def counts(self) -> bool:
        """An order that counts towards revenue."""
        return self.exists and self.stage in ORDER_STAGES

    @property
    def cancelled(self) -> bool:
        return self.exists and self.stage == CANCELLED


def gone(key: str) -> DealFacts:
    return DealFacts(key=key, exists=False)


def _money(text: str | None) -> Decimal | None:
    if text is None or text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _int(text: str | None) -> int:
    try:
        return int(Decimal(text or "0"))
    except (InvalidOperation, ValueError):
        return 0


DEAL_READ = (
    "dealstage", "shopify_currency", "shopify_created_at", "amount", "shopify_current_total_price",
    "shopify_financial_status", "shopify_abandoned_at", "shopify_recovered_checkout", "shopify_customer_id",
    "shopify_shop_domain",
)  # fmt: skip
LINE_READ = (
    "name",
    "quantity",
    "price",
    "shopify_total_discount",
    "shopify_product_id",
    "shopify_variant_id",
)
"""The properties :func:`facts_of` reads: a deal whose values of these did not change has the same
facts (so the stream can tell without building them)."""


def signature(props: Props, lines: Mapping[str, Props]) -> tuple[object, ...]:
    """What of a deal the reports can see, cheaply comparable."""
    return (
        tuple(props.get(p) for p in DEAL_READ),
        tuple(sorted((key, tuple(line.get(p) for p in LINE_READ)) for key, line in lines.items())),
    )


def line_facts(props: Props) -> LineFacts:
    """A line item's facts from its HubSpot properties (``Line.properties()`` as synced)."""
    quantity = _int(props.get("quantity"))
    price = _money(props.get("price")) or Decimal(0)
    discount = _money(props.get("shopify_total_discount")) or Decimal(0)
    product_id, variant_id = props.get("shopify_product_id"), props.get("shopify_variant_id")
    title = props.get("name")
    return LineFacts.model_construct(  # every value is made here with its field's type
        product=f"product:{product_id}" if product_id else f"title:{title or ''}",
        variant=f"variant:{variant_id}" if variant_id else None,
        title=title,
        quantity=quantity,
        revenue=price * quantity - discount,
    )


def net_of(props: Props) -> Decimal | None:
    """Revenue after refunds: ``current_total_price`` if Shopify sent it, else the total; a fully
    refunded order without it counts nothing."""
    current = _money(props.get("shopify_current_total_price"))
    if current is not None:
        return current
    if props.get("shopify_financial_status") == "refunded":
        return Decimal(0)
    return _money(props.get("amount"))


def facts_of(key: str, stage: str | None, props: Props, lines: Iterable[Props]) -> DealFacts:
    """A deal's facts from its properties (the rules' view or HubSpot's record: the same names).
    Built without validation (every value is made here with its field's type): the journeys call
    this for every deal change the reports can see."""
    currency = props.get("shopify_currency") or UNKNOWN
    # X3: once shops are told apart every deal names its shop, and each shop is reported apart, as
    # a currency of its own ("USD (b.myshopify.com)"), so two shops' orders, customer ids and
    # product ids never mix in one report (a single shop's deals name none: "USD").
    shop = props.get("shopify_shop_domain")
    return DealFacts.model_construct(
        key=key,
        currency=f"{currency} ({shop})" if shop else currency,
        stage=stage,
        created_at=_instant(props.get("shopify_created_at")),
        amount=_money(props.get("amount")),
        net=net_of(props),
        abandoned_at=_instant(props.get("shopify_abandoned_at")),
        recovered=props.get("shopify_recovered_checkout") == "true",
        customer=props.get("shopify_customer_id") or None,
        lines=tuple(sorted((line_facts(p) for p in lines), key=lambda f: (f.variant or "", f.product))),
    )


# ---- the fold ----


def _fmt(value: Decimal) -> str:
    return format(value.quantize(CENT, ROUND_HALF_EVEN), "f")


def _ratio(part: int | Decimal, whole: int | Decimal) -> float:
    return round(float(Decimal(part) / Decimal(whole)), 4) if whole else 0.0


def _avg(total: Decimal, count: int) -> str:
    return _fmt(total / count) if count else _fmt(Decimal(0))


def _day(at: datetime | None) -> str:
    return at.date().isoformat() if at is not None else UNKNOWN


@dataclass
class _Day:
    revenue: Decimal = Decimal(0)
    orders: int = 0
    cancelled: int = 0
    abandoned: int = 0
    abandoned_value: Decimal = Decimal(0)
    recovered: int = 0
    recovered_value: Decimal = Decimal(0)
    new: int = 0
    returning: int = 0
    guest: int = 0


@dataclass
class _Sales:
    revenue: Decimal = Decimal(0)
    units: int = 0
    title: str | None = None


@dataclass
class _Currency:
    days: dict[str, _Day] = field(default_factory=lambda: defaultdict(_Day))
    products: dict[str, _Sales] = field(default_factory=lambda: defaultdict(_Sales))
    variants: dict[str, _Sales] = field(default_factory=lambda: defaultdict(_Sales))
    orders: list[DealFacts] = field(default_factory=list)


def _order_key(deal: DealFacts) -> tuple[bool, datetime | str, str]:
    """Orders in time order (undated last), ties by key: the same order from any source."""
    if deal.created_at is None:
        return (True, "", deal.key)
    return (False, deal.created_at, deal.key)


def _top(sales: dict[str, _Sales], by: Literal["revenue", "units"]) -> list[dict[str, Any]]:
    def rank(item: tuple[str, _Sales]) -> tuple[Decimal | int, int | Decimal, str]:
        key, s = item
        return (-s.revenue, -s.units, key) if by == "revenue" else (-s.units, -s.revenue, key)

    return [
        {"key": key, "title": s.title, "revenue": _fmt(s.revenue), "units": s.units}
        for key, s in sorted(sales.items(), key=rank)[:TOP]
    ]


def _customers(orders: list[DealFacts]) -> dict[str, tuple[str, str | None]]:
    """Each counted order's customer class (new, returning, guest) and customer id."""
    seen: set[str] = set()
    classes: dict[str, tuple[str, str | None]] = {}
    for deal in sorted(orders, key=_order_key):
        if deal.customer is None:
            classes[deal.key] = ("guest", None)
        elif deal.customer in seen:
            classes[deal.key] = ("returning", deal.customer)
        else:
            seen.add(deal.customer)
            classes[deal.key] = ("new", deal.customer)
    return classes


def _report(acc: _Currency) -> dict[str, Any]:
    classes = _customers(acc.orders)
    for deal in acc.orders:
        day = acc.days[_day(deal.created_at)]
        setattr(day, classes[deal.key][0], getattr(day, classes[deal.key][0]) + 1)
    # repeat rate and CLV as of the end of each day: cumulative over the days in order
    order_count: Counter[str] = Counter()
    spent: dict[str, Decimal] = defaultdict(Decimal)
    by_day_orders: dict[str, list[DealFacts]] = defaultdict(list)
    for deal in acc.orders:
        by_day_orders[_day(deal.created_at)].append(deal)
    rows = []
    days = sorted(acc.days, key=lambda d: (d == UNKNOWN, d))
    for name in days:
        d = acc.days[name]
        for deal in by_day_orders.get(name, ()):
            if deal.customer is not None:
                order_count[deal.customer] += 1
                spent[deal.customer] += deal.net or Decimal(0)
        customers = len(order_count)
        repeat = sum(1 for n in order_count.values() if n >= 2)
        rows.append(
            {
                "day": name,
                "revenue": _fmt(d.revenue),
                "orders": d.orders,
                "average_order_value": _avg(d.revenue, d.orders),
                "cancelled_orders": d.cancelled,
                "abandoned_checkouts": d.abandoned,
                "abandoned_value": _fmt(d.abandoned_value),
                "recovered_checkouts": d.recovered,
                "recovered_value": _fmt(d.recovered_value),
                "recovery_rate": _ratio(d.recovered, d.abandoned),
                "new_customer_orders": d.new,
                "returning_customer_orders": d.returning,
                "guest_orders": d.guest,
                "repeat_purchase_rate": _ratio(repeat, customers),
                "customer_lifetime_value": _avg(sum(spent.values(), Decimal(0)), customers),
            }
        )
    total = _Day()
    for d in acc.days.values():
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(d, name))
    customers = len(order_count)
    repeat = sum(1 for n in order_count.values() if n >= 2)
    return {
        "total": {
            "revenue": _fmt(total.revenue),
            "orders": total.orders,
            "average_order_value": _avg(total.revenue, total.orders),
            "cancelled_orders": total.cancelled,
            "abandoned_checkouts": total.abandoned,
            "abandoned_value": _fmt(total.abandoned_value),
            "recovered_checkouts": total.recovered,
            "recovered_value": _fmt(total.recovered_value),
            "recovery_rate": _ratio(total.recovered, total.abandoned),
            "new_customer_orders": total.new,
            "returning_customer_orders": total.returning,
            "guest_orders": total.guest,
            "customers": customers,
            "repeat_customers": repeat,
            "repeat_purchase_rate": _ratio(repeat, customers),
            "customer_lifetime_value": _avg(sum(spent.values(), Decimal(0)), customers),
        },
        "by_day": rows,
        "top_products_by_revenue": _top(acc.products, "revenue"),
        "top_products_by_units": _top(acc.products, "units"),
        "top_variants_by_revenue": _top(acc.variants, "revenue"),
        "top_variants_by_units": _top(acc.variants, "units"),
    }


def compute(facts: Iterable[DealFacts]) -> dict[str, Any]:
    """The eight reports per shop currency: ``{currency: {"total", "by_day", "top_..."}}``, JSON-able
    (money as decimal strings to the cent, rates as fractions), the same for the same deals in any
    order."""
    by_currency: dict[str, _Currency] = defaultdict(_Currency)
    for deal in facts:
        if not deal.exists:
            continue
        acc = by_currency[deal.currency]
        if deal.abandoned_at is not None:
            day = acc.days[_day(deal.abandoned_at)]
            day.abandoned += 1
            day.abandoned_value += deal.amount or Decimal(0)
            if deal.recovered:
                day.recovered += 1
                day.recovered_value += deal.amount or Decimal(0)
        if deal.cancelled:
            acc.days[_day(deal.created_at)].cancelled += 1
        if not deal.counts:
            continue
        day = acc.days[_day(deal.created_at)]
        day.revenue += deal.net or Decimal(0)
        day.orders += 1
        acc.orders.append(deal)
        for line in deal.lines:
            for sales, key in ((acc.products, line.product), (acc.variants, line.variant)):
                if key is None:
                    continue
                s = sales[key]
                s.revenue += line.revenue
                s.units += line.quantity
                titles = [t for t in (s.title, line.title) if t]
                s.title = min(titles) if titles else None  # any order of deals names it alike
    return {currency: _report(acc) for currency, acc in sorted(by_currency.items())}


def deals_by_stage(facts: Iterable[DealFacts]) -> dict[str, int]:
    """S1: how many deals exist in each stage."""
    return dict(sorted(Counter(f.stage or UNKNOWN for f in facts if f.exists).items()))
