"""Products (SPEC P1, P3, P5): the HubSpot product library follows Shopify's products.

- P1: a product becomes a HubSpot product with its 11 properties, keyed by
  ``shopify_product_key = product:<id>``.
- P5 (beyond the legacy integration): each variant also becomes a HubSpot product, keyed
  ``variant:<id>``, named "<product> - <variant>", with its own price and SKU and
  ``shopify_parent_product_id`` linking it to its product; switched off by ``sync_variants``. A
  product without options (one variant, "Default Title") is synced as the product alone. A
  variant removed in Shopify is archived. Line items point at the variant's product when there is
  one, else at the product (the writer sets ``hs_product_id``).
- P3: ``products/delete`` archives the product and its variants; a late update after the delete
  does not bring them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from config.rules import RuleConfig
from schemas.commands import AnyCommand, Archive, PropertyValue
from schemas.envelope import Delivery
from schemas.shopify import Deleted, Product, Variant
from streams.mapping import format_value, product_properties
from streams.rules.common import Version, evolve, remember, upsert_if_changed, version_of
from streams.rules.keys import product_ref, shop_mark, variant_ref


@dataclass(frozen=True, slots=True)
class ProductView:
    """What HubSpot holds (or should hold) for the product: its properties and its variants'."""

    exists: bool = False
    properties: dict[str, PropertyValue] = field(default_factory=dict)
    variants: dict[int, dict[str, PropertyValue]] = field(default_factory=dict)


class ProductState(BaseModel):
    model_config = ConfigDict(frozen=True)

    product_id: int
    prefix: str = ""
    """X3: the key prefix of the product's shop (empty for the primary shop)."""
    partition: int = -1
    seen: dict[str, datetime] = Field(default_factory=dict)
    version: Version | None = None
    properties: dict[str, PropertyValue] = Field(default_factory=dict)
    variants: dict[int, dict[str, PropertyValue]] = Field(default_factory=dict)
    deleted_at: datetime | None = None
    emitted: ProductView = Field(default_factory=ProductView)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A rule's result: the new state and the HubSpot commands to send."""

    state: ProductState
    commands: list[AnyCommand] = field(default_factory=list)


def variant_properties(product: Product, variant: Variant) -> dict[str, PropertyValue]:
    """P5: a variant as a HubSpot product of its own, linked to its parent product."""
    title = product.title or ""
    return {
        "name": f"{title} - {variant.title}" if variant.title else title,
        "price": format_value(variant.price),
        "hs_sku": variant.sku,
        "shopify_product_id": str(product.id),
        "shopify_variant_id": str(variant.id),
        "shopify_parent_product_id": str(product.id),
        "shopify_vendor": product.vendor,
        "shopify_product_type": product.product_type,
        "shopify_created_at": format_value(variant.created_at),
    }


WEBHOOK_VARIANT_LIMIT = 100
DEFAULT_VARIANT_TITLE = "Default Title"


def _variants(state: ProductState, product: Product) -> dict[int, dict[str, PropertyValue]]:
    """The product's variants. A webhook carries only the first 100 in full, so when it carries
    100 the ones it does not name are kept rather than taken as removed."""
    if len(product.variants) == 1 and product.variants[0].title == DEFAULT_VARIANT_TITLE:
        return {}  # a product without options: its one variant is the product itself
    fresh = {v.id: variant_properties(product, v) for v in product.variants}
    if len(product.variants) >= WEBHOOK_VARIANT_LIMIT:
        return {**state.variants, **fresh}
    return fresh


def render(state: ProductState, config: RuleConfig) -> ProductView:
    if state.deleted_at is not None or state.version is None:
        return ProductView(exists=False)
    return ProductView(
        exists=True,
        properties=state.properties,
        variants=state.variants if config.sync_variants else {},
    )


def diff(product_id: int, before: ProductView, after: ProductView, prefix: str = "") -> list[AnyCommand]:
    if not after.exists:
        if not before.exists:
            return []
        archives: list[AnyCommand] = [Archive(record=variant_ref(v, prefix)) for v in sorted(before.variants)]
        return [*archives, Archive(record=product_ref(product_id, prefix))]
    commands = upsert_if_changed(
        product_ref(product_id, prefix), after.properties, before.properties if before.exists else None
    )
    for vid, props in sorted(after.variants.items()):
        previous = before.variants.get(vid) if before.exists else None
        commands += upsert_if_changed(variant_ref(vid, prefix), props, previous)
    if before.exists:
        commands += [
            Archive(record=variant_ref(v, prefix)) for v in sorted(set(before.variants) - set(after.variants))
        ]
    return commands


def _with_shop(props: dict[str, PropertyValue], prefix: str, config: RuleConfig) -> dict[str, PropertyValue]:
    """X3: a product (or variant) names its shop once shops are told apart."""
    return {**props, **shop_mark(prefix, config)}


def decide(state: ProductState, delivery: Delivery, now: datetime, config: RuleConfig) -> Outcome:
    """Fold a ``products/*`` delivery into the product."""
    seen = remember(state.seen, delivery.event_id, delivery.event_time, config.dedupe_ttl)
    if seen is None:
        return Outcome(state=state)
    record = delivery.parse_body()
    after = evolve(state, {"seen": seen})
    if isinstance(record, Deleted):
        if after.deleted_at is None:
            after = evolve(after, {"deleted_at": delivery.event_time})
    elif isinstance(record, Product) and after.deleted_at is None:
        version = version_of(record.updated_at, delivery.body, delivery.event_time)
        if version.newer_than(after.version):
            props = product_properties(record)
            props["shopify_product_id"] = str(record.id)
            variants = {v: _with_shop(p, state.prefix, config) for v, p in _variants(after, record).items()}
            after = evolve(
                after,
                {
                    "version": version,
                    "properties": _with_shop(props, state.prefix, config),
                    "variants": variants,
                },
            )
    view = render(after, config)
    commands = diff(state.product_id, state.emitted, view, state.prefix)
    return Outcome(state=evolve(after, {"emitted": view}), commands=commands)
