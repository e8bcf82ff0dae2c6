"""The product rules (SPEC P1, P3, P5), as pure functions.

No Kafka: bodies come from ``devtools.samplestore``, wrapped in the envelope the bridge appends, and
folded through ``streams.rules.products`` with ``now`` passed explicitly. A small model of HubSpot
(:func:`hubspot_after`) applies the emitted commands, so properties can be stated about what the
product library ends up holding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from config.rules import RuleConfig
from devtools.samplestore import API_VERSION, PRODUCTS, SHOP_DOMAIN, product_body, stable_id, token
from schemas.commands import AnyCommand, Archive, PropertyValue, Upsert
from schemas.envelope import Delivery
from schemas.shopify import Product, Variant
from streams.rules import products
from streams.rules.common import body_digest
from streams.rules.keys import product_ref, variant_ref

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CONFIG = RuleConfig()
NO_VARIANTS = RuleConfig(sync_variants=False)
PID = stable_id("product", "test-products", 0)
SUNGLASSES = PRODUCTS[0]  # two variants: Black, Gold
SHIRT = PRODUCTS[1]  # three variants: Small, Medium, Large

# P1: the SPEC's 11 product properties, by HubSpot name.
P1_PROPERTIES = {
    "name",  # Title
    "description",  # Body_HTML
    "shopify_created_at",  # Created at
    "shopify_handle",  # Handle
    "hs_images",  # Images
    "shopify_product_type",  # Product type
    "shopify_published_at",  # Published at
    "shopify_published_scope",  # Published scope
    "shopify_tags",  # Tags
    "shopify_vendor",  # Vendor
    "price",  # Price
}


# ---- builders ----


def hs_time(at: datetime) -> str:
    """How HubSpot is sent an instant: UTC ISO-8601 with milliseconds (see streams.mapping)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def deliver(topic: str, body: dict[str, Any], at: datetime, *, event_id: str | None = None) -> Delivery:
    """The envelope the bridge appends for ``body`` (event id derived from the content unless given)."""
    eid = event_id or token("event", topic, body_digest(body), at.isoformat())
    return Delivery(
        topic=topic, shop_domain=SHOP_DOMAIN, webhook_id=f"wh-{eid}", event_id=eid, triggered_at=at,
        api_version=API_VERSION, received_at=at, source="webhook", body=body,
    )  # fmt: skip


def options_spec(
    options: list[str], *, base: tuple[str, str, str, list[str], str] = SHIRT, title: str | None = None
) -> tuple[str, str, str, list[str], str]:
    name, kind, vendor, _, price = base
    return (title or name, kind, vendor, options, price)


def product(
    at: datetime = T0,
    *,
    updated_at: datetime | None = None,
    spec: tuple[str, str, str, list[str], str] = SHIRT,
    price: str | None = None,
) -> dict[str, Any]:
    return product_body(PID, spec, at, updated_at=updated_at, price=price)


def variant_id(option: str) -> int:
    return stable_id("variant", PID, option)


@dataclass
class Run:
    state: products.ProductState
    commands: list[AnyCommand] = field(default_factory=list)


def fold(
    deliveries: Iterable[Delivery],
    *,
    state: products.ProductState | None = None,
    config: RuleConfig = CONFIG,
    now: datetime | None = None,
) -> Run:
    run = Run(state=state or products.ProductState(product_id=PID))
    for d in deliveries:
        outcome = products.decide(run.state, d, now or d.received_at, config)
        run.state = outcome.state
        run.commands += outcome.commands
    return run


def hubspot_after(commands: Iterable[AnyCommand]) -> dict[str, dict[str, PropertyValue]]:
    """The live (not archived) HubSpot products after the commands: record key -> properties."""
    records: dict[str, dict[str, PropertyValue]] = {}
    for command in commands:
        if isinstance(command, Upsert):
            records.setdefault(command.record.key, {}).update(command.properties)
        elif isinstance(command, Archive):
            assert command.record.key in records, f"archived {command.record.key} that is not live"
            del records[command.record.key]
    return records


def expected_library(view: products.ProductView) -> dict[str, dict[str, PropertyValue]]:
    """What the product library must hold for a view: the product and each variant, with keys."""
    if not view.exists:
        return {}
    out = {product_ref(PID).key: {**view.properties, "shopify_product_key": f"product:{PID}"}}
    for vid, props in view.variants.items():
        out[variant_ref(vid).key] = {**props, "shopify_product_key": f"variant:{vid}"}
    return out


def upserts_by_key(commands: Sequence[AnyCommand]) -> dict[str, dict[str, PropertyValue]]:
    out: dict[str, dict[str, PropertyValue]] = {}
    for c in commands:
        if isinstance(c, Upsert):
            assert c.record.key not in out, f"two upserts of {c.record.key} in one outcome"
            out[c.record.key] = c.properties
    return out


def archived(commands: Sequence[AnyCommand]) -> set[str]:
    return {c.record.key for c in commands if isinstance(c, Archive)}


# ---- P1 ----


def test_p1_product_upsert_has_the_eleven_properties_keyed_by_product_id() -> None:
    """P1: Title, Body_HTML, Created at, Handle, Images, Product type, Published at, Published scope,
    Tags, Vendor and Price, on a product keyed shopify_product_key = product:<id>."""
    body = product(T0, spec=SUNGLASSES)
    run = fold([deliver("products/create", body, T0)], config=NO_VARIANTS)
    assert len(run.commands) == 1
    (upsert,) = run.commands
    assert isinstance(upsert, Upsert)
    assert upsert.record == product_ref(PID)
    assert (upsert.record.object_type, upsert.record.id_property) == ("products", "shopify_product_key")
    assert upsert.record.id_value == f"product:{PID}"
    expected: dict[str, PropertyValue] = {
        "name": "Aviator sunglasses",
        "description": "<p>Aviator sunglasses by Acme.</p>",
        "shopify_created_at": "2026-03-02T09:00:00.000Z",
        "shopify_handle": "aviator-sunglasses",
        "hs_images": "https://cdn.shopify.com/s/files/sample/aviator-sunglasses.png",
        "shopify_product_type": "Accessories",
        "shopify_published_at": "2026-03-02T09:00:00.000Z",
        "shopify_published_scope": "web",
        "shopify_tags": "accessories, sample",
        "shopify_vendor": "Acme",
        "price": "89.99",
    }
    assert set(expected) == P1_PROPERTIES
    assert {k: upsert.properties.get(k) for k in P1_PROPERTIES} == expected
    assert upsert.properties["shopify_product_key"] == f"product:{PID}"
    assert upsert.properties["shopify_product_id"] == str(PID)


def test_p1_every_image_and_the_first_variants_price() -> None:
    """P1: Images are all the product's images; Price is the first variant's (by position), as
    Shopify has no product-level price."""
    body = product(spec=SUNGLASSES)
    body["images"].append({"id": 2, "position": 2, "alt": None, "src": "https://cdn.example/side.png"})
    body["variants"][0]["position"], body["variants"][1]["position"] = 2, 1
    body["variants"][1]["price"] = "79.99"
    props = products.render(fold([deliver("products/create", body, T0)]).state, CONFIG).properties
    assert props["hs_images"] == (
        "https://cdn.shopify.com/s/files/sample/aviator-sunglasses.png;https://cdn.example/side.png"
    )
    assert props["price"] == "79.99"


def test_p1_update_sends_only_the_changed_properties() -> None:
    """P1: an update re-sends only what changed (plus the key), for the product and its variants."""
    run = fold([deliver("products/create", product(), T0)])
    later = T0 + timedelta(days=1)
    more = fold(
        [deliver("products/update", product(updated_at=later, price="17.50"), later)], state=run.state
    )
    by_key = upserts_by_key(more.commands)
    assert by_key[product_ref(PID).key] == {"price": "17.50", "shopify_product_key": f"product:{PID}"}
    for option in SHIRT[3]:
        vid = variant_id(option)
        assert by_key[variant_ref(vid).key] == {"price": "17.50", "shopify_product_key": f"variant:{vid}"}
    assert archived(more.commands) == set()


# ---- P5 ----


def test_p5_each_variant_becomes_a_product_keyed_by_variant_id_linked_to_its_parent() -> None:
    """P5: each variant is a HubSpot product of its own, keyed variant:<id>, named after product and
    variant, with its own price and SKU and shopify_parent_product_id = the product's id."""
    body = product(spec=SHIRT)
    run = fold([deliver("products/create", body, T0)])
    by_key = upserts_by_key(run.commands)
    assert set(by_key) == {product_ref(PID).key} | {variant_ref(variant_id(o)).key for o in SHIRT[3]}
    for raw in body["variants"]:
        props = by_key[variant_ref(raw["id"]).key]
        assert variant_ref(raw["id"]).id_value == f"variant:{raw['id']}"
        assert props["shopify_product_key"] == f"variant:{raw['id']}"
        assert props["name"] == f"Example T-Shirt - {raw['title']}"
        assert props["price"] == "19.99"
        assert props["hs_sku"] == raw["sku"]
        assert props["shopify_parent_product_id"] == str(PID)
        assert props["shopify_variant_id"] == str(raw["id"])


def test_p5_variant_properties_name_price_and_parent() -> None:
    """P5: variant_properties, directly: a titleless variant is named after its product."""
    prod = Product.model_validate(product(spec=SUNGLASSES))
    var = prod.variants[1]
    props = products.variant_properties(prod, var)
    assert props["name"] == "Aviator sunglasses - Gold"
    assert props["price"] == "89.99"
    assert props["shopify_parent_product_id"] == str(PID)
    assert props["shopify_created_at"] == "2026-03-02T09:00:00.000Z"
    untitled = Variant.model_validate({**product(spec=SUNGLASSES)["variants"][0], "title": None})
    assert products.variant_properties(prod, untitled)["name"] == "Aviator sunglasses"


def test_p5_sync_variants_off_syncs_no_variant() -> None:
    """P5/W4: with sync_variants=False only products are synced: no variant upserts, and removing or
    deleting never archives a variant that was never written."""
    run = fold([deliver("products/create", product(), T0)], config=NO_VARIANTS)
    assert set(upserts_by_key(run.commands)) == {product_ref(PID).key}
    assert products.render(run.state, NO_VARIANTS).variants == {}
    later = T0 + timedelta(days=1)
    smaller = product(updated_at=later, spec=options_spec(["Small"]))
    more = fold([deliver("products/update", smaller, later)], state=run.state, config=NO_VARIANTS)
    assert more.commands == []
    gone = fold([deliver("products/delete", {"id": PID}, later + timedelta(hours=1))], state=more.state,
                config=NO_VARIANTS)  # fmt: skip
    assert gone.commands == [Archive(record=product_ref(PID))]


def test_p5_variant_removed_in_an_update_is_archived() -> None:
    """P5: a variant removed in Shopify is archived in HubSpot; the product and the other variants
    stay."""
    run = fold([deliver("products/create", product(), T0)])
    later = T0 + timedelta(days=1)
    body = product(updated_at=later, spec=options_spec(["Small", "Medium"]))
    more = fold([deliver("products/update", body, later)], state=run.state)
    assert more.commands == [Archive(record=variant_ref(variant_id("Large")))]
    library = hubspot_after(run.commands + more.commands)
    assert set(library) == {
        product_ref(PID).key,
        *(variant_ref(variant_id(o)).key for o in ("Small", "Medium")),
    }


def test_p5_webhook_with_100_variants_keeps_the_variants_it_does_not_name() -> None:
    """P5: a webhook carries at most 100 variants in full; when it carries 100, a variant it does not
    name may just be beyond the limit, so it is kept, not archived. Below 100, absence is removal."""
    first = [f"opt{i:03d}" for i in range(100)]
    run = fold([deliver("products/create", product(spec=options_spec(first)), T0)])
    assert len(upserts_by_key(run.commands)) == 101
    t1 = T0 + timedelta(days=1)
    shifted = [f"opt{i:03d}" for i in range(1, 101)]  # opt000 not named, opt100 new
    more = fold([deliver("products/update", product(updated_at=t1, spec=options_spec(shifted)), t1)],
                state=run.state)  # fmt: skip
    assert archived(more.commands) == set()
    assert set(upserts_by_key(more.commands)) == {variant_ref(variant_id("opt100")).key}
    assert variant_id("opt000") in products.render(more.state, CONFIG).variants
    t2 = T0 + timedelta(days=2)
    few = [f"opt{i:03d}" for i in range(1, 51)]
    shrunk = fold([deliver("products/update", product(updated_at=t2, spec=options_spec(few)), t2)],
                  state=more.state)  # fmt: skip
    assert archived(shrunk.commands) == {
        variant_ref(variant_id(f"opt{i:03d}")).key for i in [0, *range(51, 101)]
    }


# ---- P3 ----


def test_p3_delete_archives_the_product_and_its_variants() -> None:
    """P3: a product deleted in Shopify is deleted (archived) in HubSpot, with its variant products."""
    run = fold([deliver("products/create", product(), T0)])
    gone = fold([deliver("products/delete", {"id": PID}, T0 + timedelta(days=1))], state=run.state)
    assert all(isinstance(c, Archive) for c in gone.commands)
    assert archived(gone.commands) == {product_ref(PID).key} | {
        variant_ref(variant_id(o)).key for o in SHIRT[3]
    }
    assert len(gone.commands) == 4
    assert hubspot_after(run.commands + gone.commands) == {}
    assert not products.render(gone.state, CONFIG).exists


def test_p3_a_late_update_after_the_delete_changes_nothing() -> None:
    """P3: an update delivered after the delete (even with a newer updated_at) does not bring the
    product back; nor does a repeated delete archive again."""
    run = fold([deliver("products/create", product(), T0)])
    gone = fold([deliver("products/delete", {"id": PID}, T0 + timedelta(days=1))], state=run.state)
    late = T0 + timedelta(days=2)
    after = fold(
        [
            deliver("products/update", product(updated_at=late, price="9.99"), late),
            deliver("products/delete", {"id": PID}, late + timedelta(minutes=1)),
        ],
        state=gone.state,
    )
    assert after.commands == []
    assert not products.render(after.state, CONFIG).exists


def test_p3_delete_arriving_before_the_create_never_creates_the_product() -> None:
    """P3: deliveries can arrive out of order: a delete seen first means the product never appears."""
    run = fold([deliver("products/delete", {"id": PID}, T0 + timedelta(days=1))])
    assert run.commands == []
    run = fold([deliver("products/create", product(), T0)], state=run.state)
    assert run.commands == []


# ---- versions and duplicates ----


def test_stale_version_arriving_late_is_ignored() -> None:
    """Only the newest version counts: an older update delivered after a newer one emits nothing."""
    t1, t2 = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    newer = deliver("products/update", product(updated_at=t2, price="25.00"), t2)
    older = deliver("products/update", product(updated_at=t1, price="21.00"), t2 + timedelta(minutes=1))
    run = fold([newer])
    stale = fold([older], state=run.state)
    assert stale.commands == []
    assert products.render(stale.state, CONFIG).properties["price"] == "25.00"


def test_duplicate_delivery_is_ignored_and_state_unchanged() -> None:
    """Shopify delivers at least once: the same delivery twice emits nothing the second time."""
    d = deliver("products/create", product(), T0)
    run = fold([d])
    outcome = products.decide(run.state, d, T0 + timedelta(minutes=5), CONFIG)
    assert outcome.commands == []
    assert outcome.state == run.state


def test_same_body_under_a_new_event_id_emits_nothing() -> None:
    """A second webhook carrying the same product version (create then update) changes nothing."""
    body = product()
    run = fold([deliver("products/create", body, T0)])
    assert len(upserts_by_key(run.commands)) == 4
    again = fold([deliver("products/update", body, T0, event_id="another-event")], state=run.state)
    assert again.commands == []
    assert again.state.emitted == run.state.emitted


def test_diff_and_render_directly() -> None:
    """P3/P5: diff of views: nothing to nothing is empty; a vanished view archives variants, then the
    product; render hides variants when sync_variants is off and everything once deleted."""
    empty = products.ProductView()
    assert products.diff(PID, empty, empty) == []
    shown = products.ProductView(
        exists=True, properties={"name": "x"}, variants={2: {"name": "x - b"}, 1: {}}
    )
    assert products.diff(PID, shown, empty) == [
        Archive(record=variant_ref(1)),
        Archive(record=variant_ref(2)),
        Archive(record=product_ref(PID)),
    ]
    assert products.diff(PID, shown, shown) == []
    state = fold([deliver("products/create", product(), T0)]).state
    assert len(products.render(state, CONFIG).variants) == 3
    assert products.render(state, NO_VARIANTS).variants == {}
    deleted = state.model_copy(update={"deleted_at": T0})
    assert products.render(deleted, CONFIG) == products.ProductView(exists=False)


# ---- properties ----

OPTIONS = SHIRT[3] + ["XL"]
VERSIONS = st.lists(
    st.tuples(
        # minutes after T0, inside one dedupe window; coarse, so versions often share updated_at
        st.integers(min_value=0, max_value=12).map(lambda k: k * 200),
        st.sampled_from(["19.99", "17.50", "21.00"]),
        st.lists(st.sampled_from(OPTIONS), min_size=1, max_size=4, unique=True),
        st.sampled_from(["Example T-Shirt", "Example Tee"]),
    ),
    min_size=1,
    max_size=5,
)


def _deliveries(versions: list[tuple[int, str, list[str], str]], delete_at: int | None) -> list[Delivery]:
    out = []
    for i, (minutes, price, options, title) in enumerate(versions):
        at = T0 + timedelta(minutes=minutes)
        body = product(T0, updated_at=at, spec=options_spec(options, title=title), price=price)
        out.append(deliver("products/create" if i == 0 else "products/update", body, at))
    if delete_at is not None:
        out.append(deliver("products/delete", {"id": PID}, T0 + timedelta(minutes=delete_at)))
    return out


@settings(max_examples=80, deadline=None)
@given(VERSIONS, st.one_of(st.none(), st.integers(min_value=0, max_value=47 * 60)), st.data())
def test_property_any_arrival_order_converges_to_the_newest_version(
    versions: list[tuple[int, str, list[str], str]], delete_at: int | None, data: st.DataObject
) -> None:
    """P1/P3/P5: in any arrival order the library ends holding the newest version (its properties,
    exactly its variants) or, once deleted, nothing; replaying the log from a fresh state emits the
    same; replaying it on top of the state emits nothing."""
    pool = _deliveries(versions, delete_at)
    perm = data.draw(st.permutations(pool))
    run = fold(perm)
    view = products.render(run.state, CONFIG)
    assert run.state.emitted == view
    assert hubspot_after(run.commands) == expected_library(view)
    if delete_at is not None:
        assert not view.exists
    else:
        assert view.exists
        newest_at = max(v[0] for v in versions)
        newest = [
            (title, price, {variant_id(o) for o in opts})
            for m, price, opts, title in versions
            if m == newest_at
        ]
        name, price = view.properties["name"], view.properties["price"]
        assert (name, price, set(view.variants)) in newest  # the newest; of tied versions, any one
        assert all(v["price"] == price for v in view.variants.values())
    assert fold(pool).state.emitted == fold(reversed(pool)).state.emitted == run.state.emitted
    replay = fold(perm)
    assert replay.commands == run.commands and replay.state == run.state
    assert fold(perm, state=run.state).commands == []


@settings(max_examples=60, deadline=None)
@given(VERSIONS, st.one_of(st.none(), st.integers(min_value=0, max_value=47 * 60)), st.data())
def test_property_duplicate_delivery_emits_nothing_and_leaves_state_equal(
    versions: list[tuple[int, str, list[str], str]], delete_at: int | None, data: st.DataObject
) -> None:
    """Shopify delivers at least once: re-delivering any delivery already folded emits nothing and
    leaves the state exactly as it was."""
    pool = data.draw(st.permutations(_deliveries(versions, delete_at)))
    run = fold(pool)
    again = data.draw(st.sampled_from(pool))
    outcome = products.decide(run.state, again, T0 + timedelta(days=1), CONFIG)
    assert outcome.commands == []
    assert outcome.state == run.state


def test_p5_a_product_without_options_is_synced_as_the_product_alone() -> None:
    """P5: Shopify gives a product without options one variant titled "Default Title"; that variant
    is the product itself, so no second "<title> - Default Title" product appears in the library."""
    run = fold([deliver("products/create", product(spec=options_spec(["Default Title"])), T0)])
    keys = set(upserts_by_key(run.commands))
    assert keys == {f"products:shopify_product_key:product:{PID}"}
    two = fold([deliver("products/create", product(spec=options_spec(["Default Title", "Large"])), T0)])
    assert len(upserts_by_key(two.commands)) == 3, "with real options every variant is synced"
