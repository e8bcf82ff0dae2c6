"""G1 wiring step 2 end to end: ``shopsync simulate`` (bridge, worker, writer and the HubSpot
sandbox on a real broker) with ``SHOPSYNC_REDACTABLE`` on and off.

Each scenario runs twice, the same lines, in topics of their own. With the setting the HubSpot
account ends up the same as without it (every record by its unique property with its properties,
every association by both ends' unique properties, the subscription statuses, the archived
counts), and no record key on any of the run's topics (the Shopify topics, the worker's internal
topics and changelogs, ``hubspot.commands``, ``hubspot.ids``, the dead letters) holds a customer's
email, where without it the contacts' keys do (so the scan sees them). Scenarios: the contacts
acceptance scenario (C1-C8, with a contact deleted in HubSpot: C4's join of the deletion webhook
with the id map's pseudonym keys), and a B2B store with consent changes (X2's company-contact
associations, X4's subscriptions on: the writer asks HubSpot by the email a pseudonym ref carries).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from devtools import simulate
from devtools.simulate import Result, parse, run
from streams.rules.contact_keys import is_pseudonym
from streams.rules.keys import COMMERCE_UNIQUE_PROPERTY, UNIQUE_PROPERTY, normalize_email
from streams.topic_reader import read_all
from tests.simulate.test_simulate import write
from tests.simulate.test_simulate_b2b_consent import b2b_lines, consent_lines

pytestmark = pytest.mark.kafka

SCENARIOS = Path(__file__).parents[1] / "scenarios"
UNIQUE = {**UNIQUE_PROPERTY, **COMMERCE_UNIQUE_PROPERTY}


def _emails(value: Any) -> set[str]:
    """Every email address in a JSON tree, normalised."""
    if isinstance(value, dict):
        return set().union(*(_emails(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_emails(v) for v in value)) if value else set()
    normal = normalize_email(value) if isinstance(value, str) else None
    return {normal} if normal else set()


def normalized(account: dict[str, Any]) -> dict[str, Any]:
    """The account without HubSpot's own ids and times: records by unique property, stage and
    pipeline ids as labels, a line item's product by its key, associations by both ends' keys."""
    names = {(t, str(r["id"])): r["properties"].get(p) for t, p in UNIQUE.items() for r in account.get(t, [])}
    both = [*account.get("pipelines", []), *account.get("order_pipelines", [])]
    labels = {str(p["id"]): p["label"] for p in both}
    labels |= {str(s["id"]): s["label"] for p in both for s in p["stages"]}
    records: dict[str, dict[str, Any]] = {}
    for object_type, unique in UNIQUE.items():
        for record in account.get(object_type, []):
            props = dict(record["properties"])
            for name in ("dealstage", "pipeline", "hs_pipeline", "hs_pipeline_stage"):
                if name in props:
                    props[name] = labels.get(str(props[name]), props[name])
            if props.get("hs_product_id"):
                props["hs_product_id"] = names.get(("products", str(props["hs_product_id"])))
            records[f"{object_type} {props.get(unique)}"] = props
    links = sorted(
        (a["from_type"], names.get((a["from_type"], str(a["from_id"]))), a["to_type"],
         names.get((a["to_type"], str(a["to_id"]))), int(a["type_id"]))
        for a in account.get("associations", [])
    )  # fmt: skip
    statuses = sorted(
        (s["email"], s["subscriptionId"], s["status"]) for s in account.get("subscriptions", [])
    )
    archived = account.get("archived")
    return {"records": records, "links": links, "subscriptions": statuses, "archived": archived}


async def _keys(bootstrap: str, suffix: str) -> dict[str, list[str]]:
    """Every record key of every topic of the run (its topics and its worker's changelogs)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if suffix in t)
    finally:
        await consumer.stop()
    assert any(t.endswith("-contacts-changelog") for t in topics)
    assert any(t.endswith(".hubspot.ids") for t in topics)
    return {t: [r.key.decode() for r in await read_all(bootstrap, t) if r.key] for t in topics}


async def _run(
    path: Path, bootstrap: str, work: Path, monkeypatch: pytest.MonkeyPatch, redactable: bool
) -> tuple[Result, dict[str, list[str]]]:
    # unique per run: tmp_path's name is the same every run, and a second run on the same broker
    # met the first one's topics and committed offsets (found when a session's broker was reused)
    suffix = f"pseudo-{uuid.uuid4().hex[:8]}-{'on' if redactable else 'off'}"
    monkeypatch.setattr(simulate, "unique_suffix", lambda: suffix)
    monkeypatch.setenv("SHOPSYNC_PRIVACY_SECRET", "a privacy secret of the test, 32+ bytes long")
    monkeypatch.setenv("SHOPSYNC_REDACTABLE", "true" if redactable else "false")
    # step 2 on its own (the keys), as it was built: sealing, on by default, has its own tests
    # (test_sealed_end_to_end.py runs this comparison sealed, with pseudonym keys on and off)
    monkeypatch.setenv("SHOPSYNC_SEAL_PERSONAL_DATA", "false")
    (work / suffix).mkdir()
    result = await run(parse(path), bootstrap, work / suffix, 120)
    assert result.report.lost == 0 and not any(result.dead_letters.values()), result.report
    return result, await _keys(bootstrap, suffix)


OTHER_RECORDS = ("deals:", "line_items:", "products:", "companies:", "orders:", "carts:")
"""The commands' and the id map's keys of records other than contacts."""


def _contact_named(key: str) -> str | None:
    """The contact a key of the contacts topic or table, the commands or the id map names; None
    for a key that names no contact (another record's; a tick, a timer partition's clock row)."""
    text = key.strip('"')
    if text == "tick" or text.startswith(("\\u0000", "\x00", *OTHER_RECORDS)):
        return None
    return text.removeprefix("contacts:email:")


def _b2b_and_consent(tmp_path: Path) -> Path:
    lines = sorted([*b2b_lines(), *consent_lines()], key=lambda line: str(line["at"]))
    return write(tmp_path, list[object](lines))


@pytest.mark.parametrize("scenario", ["contacts", "b2b-consent"])
async def test_with_pseudonym_keys_hubspot_holds_the_same_and_no_key_holds_an_email(
    scenario: str, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if scenario == "contacts":
        path = SCENARIOS / "contacts.jsonl"
    else:
        monkeypatch.setenv("SHOPSYNC_SYNC_EMAIL_SUBSCRIPTION", "Marketing Information")
        monkeypatch.setenv("SHOPSYNC_EMAIL_LEGAL_BASIS", "CONSENT_WITH_NOTICE")
        path = _b2b_and_consent(tmp_path)
    emails = _emails([orjson.loads(line) for line in path.read_text().splitlines() if line.startswith("{")])
    assert len(emails) >= 2

    off, off_keys = await _run(path, kafka_bootstrap, tmp_path, monkeypatch, redactable=False)
    on, on_keys = await _run(path, kafka_bootstrap, tmp_path, monkeypatch, redactable=True)

    assert normalized(on.account) == normalized(off.account)
    assert {c["properties"]["email"] for c in on.account["contacts"]} <= emails, "the emails reached HubSpot"
    if scenario == "contacts":
        assert on.account["archived"]["contacts"] >= 1, "C4: the contact deleted in HubSpot"
    else:
        assert normalized(on.account)["subscriptions"], "X4: a subscription status was set by email"

    def showing(keys: dict[str, list[str]]) -> dict[str, set[str]]:
        """The emails each topic's keys show, for the topics whose keys show one."""
        shown = {t: {e for e in emails for k in ks if e in k.lower()} for t, ks in keys.items()}
        return {t: found for t, found in shown.items() if found}

    assert showing(off_keys), "without the setting the contacts' keys are emails: the scan sees them"
    assert showing(on_keys) == {}, "with it, no record key of any topic holds an email"
    keyed_by_contact = ("-contacts-changelog", ".contacts", ".hubspot.ids", ".hubspot.commands")
    contact_keys = {t: ks for t, ks in on_keys.items() if t.endswith(keyed_by_contact)}
    named = [n for ks in contact_keys.values() for k in ks if (n := _contact_named(k)) is not None]
    odd = [k for k in named if not is_pseudonym(k)]
    assert named and not odd, f"contacts are keyed by pseudonym everywhere, not {odd[:5]}"
