"""The backlog-drain instrument: what the backlog must leave in HubSpot, the check against the
sandbox's file, the call log (over a real sandbox), and the rate over whole windows."""

from __future__ import annotations

import math
from pathlib import Path

import httpx
import pytest

from bench.backlog import Expected, SandboxRecord, check, expected, key_of
from bench.backlog_drain import rate_of
from bench.call_log import Call, CallLog, first_linked_ms, inputs_in, linked_pairs, summarize
from bench.stack import SANDBOX_TOKEN, association_rows, bench_sandbox, records_by_key
from schemas.commands import AnyCommand, Archive, Associate, Dissociate, Upsert
from streams.rules.keys import contact_ref, deal_ref, line_item_ref

ALICE, DEAL, ITEM = contact_ref("alice@example.com"), deal_ref("j1"), line_item_ref("j1", "l1")


def test_expected_folds_each_record_and_link_in_order() -> None:
    gone = deal_ref("j2")
    commands: list[AnyCommand] = [
        Upsert(record=ALICE, properties={"firstname": "A"}),
        Upsert(record=ALICE, properties={"firstname": "B"}),
        Upsert(record=DEAL, properties={}),
        Upsert(record=ITEM, properties={}),
        Upsert(record=contact_ref("never@example.com"), properties={}, create_if_missing=False),
        Associate(record=DEAL, to=ALICE, association_type_id=3),
        Associate(record=DEAL, to=ITEM, association_type_id=19),
        Dissociate(record=DEAL, to=ITEM, association_type_id=19),
        Upsert(record=gone, properties={}),
        Associate(record=gone, to=ALICE, association_type_id=3),
        Archive(record=gone),
        Archive(record=deal_ref("never-made")),
    ]
    want = expected(commands)
    assert want.live == {key_of(ALICE), key_of(DEAL), key_of(ITEM)}
    assert want.archived == {key_of(gone)}
    assert want.links == {(key_of(DEAL), key_of(ALICE), 3)}  # the dissociated and the archived end's are not
    assert want.commands == len(commands) and want.items == 5


def test_check_times_every_item_and_finds_what_is_missing() -> None:
    want = Expected(
        live=frozenset({key_of(ALICE), key_of(DEAL)}), archived=frozenset({key_of(deal_ref("j2"))}),
        links=frozenset({(key_of(DEAL), key_of(ALICE), 3)}), commands=9,
    )  # fmt: skip
    records = {
        key_of(ALICE): [SandboxRecord(1, 1_000, False)],
        key_of(DEAL): [SandboxRecord(2, 1_500, False)],
    }
    linked = {(2, 1, 3), (1, 2, 4)}
    done = check(want, records, linked, {frozenset((1, 2)): 1_700})
    assert done.complete and sorted(done.times_ms) == [1_000, 1_500, 1_700]
    assert done.never_created == 1 and done.links_timed_by_create == 0
    inline = check(want, records, linked, {})
    assert inline.links_timed_by_create == 1 and max(inline.times_ms) == 1_500  # its later end's create

    archived_alice = {**records, key_of(ALICE): [SandboxRecord(1, 1_000, True)]}
    broken = check(want, archived_alice, linked, {})
    assert (broken.missing_records, broken.missing_links, broken.complete) == (1, 1, False)
    revived = {**records, key_of(deal_ref("j2")): [SandboxRecord(3, 900, False)]}
    assert check(want, revived, linked, {}).not_archived == 1
    assert check(want, records, {(2, 1, 4)}, {}).missing_links == 1  # a link of another type is not it


def test_summary_counts_data_calls_lookups_by_path_and_429s() -> None:
    upsert = "/crm/v3/objects/{object_type}/batch/upsert"
    read = "/crm/v3/objects/{object_type}/batch/read"
    calls = [
        Call(1, "POST", upsert, "/crm/v3/objects/contacts/batch/upsert", 200, inputs=100),
        Call(2, "POST", upsert, "/crm/v3/objects/deals/batch/upsert", 200, inputs=50),
        Call(3, "POST", upsert, "/crm/v3/objects/deals/batch/upsert", 429, inputs=50),
        Call(4, "POST", read, "/crm/v3/objects/deals/batch/read", 200, inputs=10),
        Call(5, "POST", read, "/crm/v3/objects/deals/batch/read", 207, inputs=10),
        Call(6, "GET", "/crm/v3/properties/{object_type}", "/crm/v3/properties/deals", 200),
    ]
    summary = summarize(calls)
    assert (summary.calls, summary.data_calls, summary.data_inputs, summary.rate_limited) == (6, 2, 150, 1)
    assert summary.lookups_by_path == {"/crm/v3/objects/deals/batch/read": 2} and summary.other == 1
    assert summary.inputs_per_data_call == 75.0
    assert "2 batch/read lookups (/crm/v3/objects/deals/batch/read 2)" in summary.describe()


def test_bodies_and_answers_are_read_defensively() -> None:
    assert inputs_in(b'{"inputs": [{}, {}, {}]}') == 3
    assert (
        inputs_in(b"") == inputs_in(b"not json") == inputs_in(b'{"properties": {}}') == inputs_in(b"[1]") == 0
    )
    answer = b'{"results": [{"fromObjectId": 5, "toObjectId": 7}, {"other": 1}]}'
    assert linked_pairs(answer) == ((5, 7),) and linked_pairs(b"{}") == linked_pairs(b"x") == ()
    calls = [
        Call(10, "POST", "r", "p", 201, linked=((5, 7),)),
        Call(20, "POST", "r", "p", 201, linked=((7, 5),)),
    ]
    assert first_linked_ms(calls) == {frozenset((5, 7)): 10}


def test_rate_is_taken_over_whole_windows_from_the_first_write() -> None:
    burst = [0] * 1_900 + [10_000 + i for i in range(1_900)] + [20_000] * 500  # a third window begun
    rate, windows = rate_of(burst)
    assert (rate, windows) == (190.0, 2)  # 3,800 inputs in 20 s; the 500 at 20 s would read 215/s
    short, none = rate_of([0, 500, 1_000])
    assert none == 0 and short == 3.0  # shorter than a window: first to last write
    assert rate_of([]) == (0.0, 0) and not math.isnan(short)


@pytest.mark.asyncio
async def test_the_call_log_sees_what_the_sandbox_was_asked_and_linked(tmp_path: Path) -> None:
    log = CallLog()
    async with bench_sandbox(tmp_path, call_log=log) as sandbox:
        headers = {"Authorization": f"Bearer {SANDBOX_TOKEN}"}
        async with httpx.AsyncClient(base_url=sandbox.url, headers=headers) as http:
            made = await http.post(
                "/crm/v3/objects/contacts/batch/create",
                json={"inputs": [{"properties": {"email": f"c{i}@example.com"}} for i in range(3)]},
            )
            assert made.status_code == 201, made.text
            deal = await http.post(
                "/crm/v3/objects/deals/batch/create", json={"inputs": [{"properties": {}}]}
            )
            assert deal.status_code == 201, deal.text
            deal_id, contact_id = deal.json()["results"][0]["id"], made.json()["results"][0]["id"]
            kind = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}
            link = {"from": {"id": deal_id}, "to": {"id": contact_id}, "types": [kind]}
            linked = await http.post(
                "/crm/v4/associations/deals/contacts/batch/create", json={"inputs": [link]}
            )
            assert linked.status_code == 201, linked.text
            assert (await http.get("/_sandbox/stats")).status_code == 200  # not a HubSpot call: not logged
        found = records_by_key(sandbox)
        rows = association_rows(sandbox)
    assert [(c.path, c.status, c.inputs) for c in log.calls] == [
        ("/crm/v3/objects/contacts/batch/create", 201, 3), ("/crm/v3/objects/deals/batch/create", 201, 1),
        ("/crm/v4/associations/deals/contacts/batch/create", 201, 1),
    ]  # fmt: skip
    assert all(c.is_data for c in log.calls)
    assert log.calls[-1].linked == ((int(deal_id), int(contact_id)),)
    assert found[("contacts", "email", "c0@example.com")][0].id == int(contact_id)
    assert (int(deal_id), int(contact_id), 3) in rows
