"""X3: the import of several shops, each with its own token and progress file, each record with
its shop; two shops holding the same records stay apart downstream."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from config.rules import RuleConfig
from handlers.account_fold import fold
from handlers.importer import import_plan, run_import
from streams.inprocess import InProcessPipeline
from tests.importer.test_import import TOKEN, catalogue, fake_shopify, imported


def test_each_shop_gets_its_own_token_and_progress_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPIFY_ADMIN_TOKEN", "a.myshopify.com=shpat_a,shpat_shared")
    plan = import_plan(
        Settings(), ("a.myshopify.com", "https://b.myshopify.com", "a.myshopify.com"), Path("s/st.json")
    )
    assert [(p.shop, p.url, p.token, p.state_path) for p in plan] == [
        ("a.myshopify.com", "https://a.myshopify.com", "shpat_a", Path("s/st.a.myshopify.com.json")),
        ("b.myshopify.com", "https://b.myshopify.com", "shpat_shared", Path("s/st.b.myshopify.com.json")),
    ]
    single = import_plan(Settings(), ("b.myshopify.com",), Path("s/st.json"))
    assert [(p.token, p.state_path) for p in single] == [("shpat_shared", Path("s/st.json"))], (
        "resumes as before"
    )
    monkeypatch.setenv("SHOPIFY_ADMIN_TOKEN", "a.myshopify.com=shpat_a")
    assert [p.token for p in import_plan(Settings(), ("c.myshopify.com",), Path("st.json"))] == [""]


@pytest.mark.kafka
async def test_two_shops_with_the_same_records_are_imported_each_with_its_shop(
    settings: Settings, tmp_path: Path
) -> None:
    """Two fake shops serve the same records (the shop is the URL's host: 127.0.0.1, localhost)."""
    data = catalogue()
    settings = settings.model_copy(update={"primary_shop": "127.0.0.1"})
    async with fake_shopify(data) as (url, _):
        other = url.replace("127.0.0.1", "localhost")
        for base, state in ((url, "a.json"), (other, "b.json")):
            await run_import(settings, base, TOKEN, tmp_path / state, page_size=50)
    deliveries = await imported(settings)
    assert {d.shop_domain for d in deliveries} == {"127.0.0.1", "localhost"}
    assert len(deliveries) == 2 * sum(len(v) for v in data.values())
    both, one = InProcessPipeline(config=settings.rule_config()), InProcessPipeline(config=RuleConfig())
    for d in deliveries:
        both.deliver(d)
        if d.shop_domain == "127.0.0.1":
            one.deliver(d)
    two_shops, one_shop = fold(both.commands), fold(one.commands)
    for otype in ("deals", "products"):
        assert len(two_shops.of(otype)) == 2 * len(one_shop.of(otype)) > 0, otype
    assert set(two_shops.of("contacts")) == set(one_shop.of("contacts")), "one contact per email"
    assert {p["shopify_shops"] for p in two_shops.of("contacts").values()} == {"127.0.0.1;localhost"}
