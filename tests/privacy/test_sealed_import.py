"""The REST import with ``SHOPSYNC_SEAL_PERSONAL_DATA`` on (G1), against the fake Admin API fed
from Shopify's REST fixtures: every record lands sealed, under a key the key topic holds, and the
rules decide on the opened records exactly what they decide on the records as Shopify listed them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr

from config import Settings
from handlers.bulk_import import import_jsonl
from handlers.importer import RESOURCES, run_import
from schemas.envelope import Delivery
from schemas.sealing import SEALED_FIELD, open_body, opening, personal_part, sealed_ref, spec_for
from streams.inprocess import InProcessPipeline
from streams.shredding import KeyRecord, fold_keys, key_encryption_key
from streams.topic_reader import read_all
from streams.topics import key_topic
from tests.importer.bulk_support import export, sandbox
from tests.importer.test_bulk_import import imported as bulk_imported
from tests.importer.test_import import TOKEN, catalogue, fake_shopify, imported

pytestmark = pytest.mark.kafka

SECRET = "sealed-import-secret"


async def test_an_import_seals_every_record_and_the_rules_see_them_as_listed(
    settings: Settings, tmp_path: Path
) -> None:
    sealed_settings = settings.model_copy(
        update={"seal_personal_data": True, "privacy_secret": SecretStr(SECRET)}
    )
    data = catalogue()
    async with fake_shopify(data) as (url, _):
        counts = await run_import(sealed_settings, url, TOKEN, tmp_path / "state.json", page_size=4)
    assert counts == {r: len(data[r]) for r in RESOURCES}
    deliveries = await imported(sealed_settings)
    listed = {str(r.get("id") or r.get("token")): r for records in data.values() for r in records}
    raw = orjson.dumps([d.body for d in deliveries])
    personal = 0
    for record in listed.values():
        for resource, records in data.items():
            spec = spec_for(f"{resource}/create")
            if spec is None or record not in records:
                continue
            for values in personal_part(record, spec).values():
                for value in values.values():
                    if isinstance(value, str) and len(value) >= 6:
                        personal += 1
                        assert orjson.dumps(value)[1:-1] not in raw, f"a {resource} value is readable"
    assert personal > 20, "the fixtures hold emails, names and addresses"

    keys = [
        KeyRecord.from_topic(r.key or b"", r.value)
        for r in await read_all(sealed_settings.kafka_bootstrap_servers, key_topic(sealed_settings))
    ]
    ring = fold_keys(keys, key_encryption_key(SECRET.encode()))
    sealed = [d for d in deliveries if SEALED_FIELD in d.body]
    assert len(sealed) == len(deliveries) - len(data["products"]), "all but products carry someone"
    assert all(sealed_ref(d.body) in ring for d in sealed), "sealed only under acknowledged keys"

    as_listed = InProcessPipeline()
    for d in deliveries:  # the same envelopes, with the bodies Shopify listed
        body = listed[str(d.body.get("id") or d.body.get("token"))]
        as_listed.deliver(Delivery(**{**d.model_dump(), "body": body}))
    opened = InProcessPipeline()
    with opening(ring):
        for d in deliveries:
            opened.deliver(d)
    assert opened.commands == as_listed.commands and as_listed.commands
    assert opened.dead_letters == as_listed.dead_letters == []


async def test_a_bulk_export_imports_sealed_and_opens_to_the_records_imported_unsealed(
    settings: Settings, tmp_path: Path
) -> None:
    """The GraphQL bulk path (``import_jsonl``: the same appender as ``run_bulk_import``)."""
    async with sandbox(tmp_path, customers=6) as shop:
        exports = {resource: await export(shop, resource) for resource in ("customers", "orders")}
    sealed_settings = settings.model_copy(
        update={
            "seal_personal_data": True, "privacy_secret": SecretStr(SECRET),
            "topic_prefix": f"{settings.topic_prefix}sealed.",
        }
    )  # fmt: skip
    for resource, content in exports.items():
        file = tmp_path / f"{resource}.jsonl"
        file.write_bytes(content)
        for each in (settings, sealed_settings):
            assert await import_jsonl(each, file, resource, "sample.myshopify.com") > 0
    plain, sealed = await bulk_imported(settings), await bulk_imported(sealed_settings)
    keys = [
        KeyRecord.from_topic(r.key or b"", r.value)
        for r in await read_all(sealed_settings.kafka_bootstrap_servers, key_topic(sealed_settings))
    ]
    ring = fold_keys(keys, key_encryption_key(SECRET.encode()))
    for resource in exports:
        spec = spec_for(f"{resource}/create")
        assert spec is not None
        raw = orjson.dumps([d.body for d in sealed[resource]])
        values = [
            v for d in plain[resource] for part in personal_part(d.body, spec).values() for v in part.values()
        ]
        assert len(values) > 10 and not [v for v in values if len(str(v)) >= 6 and orjson.dumps(v) in raw]
        opened = {}
        with opening(ring):
            for d in sealed[resource]:
                opened[d.event_id] = open_body(d.body, d.topic)
        assert opened == {d.event_id: d.body for d in plain[resource]}
