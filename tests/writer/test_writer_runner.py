"""The plan runner without Kafka or a server: HubSpot is an ``httpx.MockTransport`` answering as
HubSpot's batch endpoints do, the id map sends to a list, dead letters go to a list, and time is a
``ManualClock`` the test moves. Each test is one rule of SPEC R5 for a round."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from handlers import hubspot_paths as paths
from handlers.account_setup import AccountSchema
from handlers.hubspot_api import HubSpotApi
from handlers.hubspot_client import HubSpotClient, HubSpotUnavailableError, RatePacer, RetryPolicy
from handlers.id_map import IdMap
from handlers.writer_letters import DeadLetter
from handlers.writer_plan import Position
from handlers.writer_runner import LINK_WAIT_CAP, PRODUCT_WAIT_TRIES, KafkaDeliveryError, PlanRunner, Source
from handlers.writer_time import Backoff, ManualClock
from schemas.commands import AnyCommand, Associate, RecordRef, Upsert

STAGES = {"Checkout Completed": "s-completed", "Processed": "s-processed"}


@dataclass
class FakeHubSpot:
    """HubSpot's object and association batches over an in-memory account. ``refuse`` maps an
    input's id value to HubSpot's error category for it (answered in a 207); ``fail_times``
    makes an input fail that many times with ``INTERNAL_ERROR`` first; ``down`` answers 503."""

    records: dict[str, dict[str, str]] = field(default_factory=dict)  # type -> unique value -> id
    props: dict[str, dict[str, Any]] = field(default_factory=dict)  # HubSpot id -> properties
    links: set[tuple[str, str, int]] = field(default_factory=set)
    refuse: dict[str, str] = field(default_factory=dict)
    fail_times: dict[str, int] = field(default_factory=dict)
    down: bool = False
    calls: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        if self.down:
            return httpx.Response(503)
        body: Any = json.loads(request.content) if request.content else {}
        parts = request.url.path.strip("/").split("/")
        if parts[:3] == ["crm", "v3", "objects"]:
            return self._objects(parts[3], parts[5], body)
        if parts[:3] == ["crm", "v4", "associations"]:
            return self._associations(parts[6], body)
        return httpx.Response(404, json={"category": "NOT_FOUND"})

    def _objects(self, object_type: str, operation: str, body: Any) -> httpx.Response:
        held = self.records.setdefault(object_type, {})
        if operation == "archive":
            ids = {i["id"] for i in body["inputs"]}
            for value in [v for v, i in held.items() if i in ids]:
                del held[value]
            return httpx.Response(204)
        results, errors = [], []
        id_property = body.get("idProperty")
        for item in body["inputs"]:
            value, prop = item["id"], item.get("idProperty", id_property)
            if operation == "read":
                if value in held:
                    results.append({"id": held[value], "properties": {prop: value}})
                continue
            if self.fail_times.get(value, 0) > 0:
                self.fail_times[value] -= 1
                errors.append({"status": "error", "category": "INTERNAL_ERROR", "context": {"ids": [value]}})
                continue
            if value in self.refuse:
                errors.append({"status": "error", "category": self.refuse[value], "message": "not valid",
                               "context": {"ids": [value]}})  # fmt: skip
                continue
            if operation == "update" and value not in held:
                errors.append(
                    {"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": [value]}}
                )
                continue
            hubspot_id = held.setdefault(value, str(1000 + sum(len(r) for r in self.records.values())))
            self.props.setdefault(hubspot_id, {}).update(item["properties"])
            results.append({"id": hubspot_id, "properties": {prop: value}})
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            answer |= {"errors": errors, "numErrors": len(errors)}
        return httpx.Response(207 if errors else 200, json=answer)

    def _associations(self, operation: str, body: Any) -> httpx.Response:
        if operation == "archive":
            for item in body["inputs"]:
                for to in item["to"]:
                    self.links = {link for link in self.links if link[:2] != (item["from"]["id"], to["id"])}
            return httpx.Response(204)
        made = []
        for item in body["inputs"]:
            self.links.add((item["from"]["id"], item["to"]["id"], item["types"][0]["associationTypeId"]))
            made.append({"fromObjectId": item["from"]["id"], "toObjectId": item["to"]["id"]})
        return httpx.Response(201, json={"status": "COMPLETE", "results": made})


class Sent:
    """A Kafka producer that acknowledges everything at once and keeps what it was sent."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[Any]:
        self.records.append((topic, value, key))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


@dataclass
class Letters:
    """The dead-letter port as a list; ``fail`` makes Kafka refuse the next delivery."""

    delivered: list[DeadLetter] = field(default_factory=list)
    fail: bool = False

    async def deliver(self, letters: list[DeadLetter], timeout_s: float) -> list[BaseException]:
        if self.fail:
            return [TimeoutError("no acknowledgement")] * len(letters)
        self.delivered += letters
        return []

    def bodies(self) -> list[dict[str, Any]]:
        return [orjson.loads(letter.value) for letter in self.delivered]


@dataclass
class Rig:
    hubspot: FakeHubSpot = field(default_factory=FakeHubSpot)
    letters: Letters = field(default_factory=Letters)
    sent: Sent = field(default_factory=Sent)
    clock: ManualClock = field(default_factory=lambda: ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)))
    offset: int = 0

    def runner(self) -> PlanRunner:
        transport = httpx.MockTransport(self.hubspot.handle)
        api = HubSpotApi(
            HubSpotClient("https://api.hubapi.com", "t", transport=transport, retry=RetryPolicy(1))
        )
        schema = AccountSchema(pipeline_id="p-1", stage_ids=STAGES)
        return PlanRunner(
            api, IdMap(self.sent, "hubspot.ids"), schema, self.letters, link_wait_s=60.0, clock=self.clock,
            retry_backoff=Backoff(base_s=1.0, cap_s=1.0),
        )  # fmt: skip

    def runner_over(
        self,
        handle: Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]],
        *,
        pacer: RatePacer | None = None,
        repair: Callable[[dict[str, Any]], Awaitable[AccountSchema | None]] | None = None,
    ) -> PlanRunner:
        """A runner whose HubSpot is ``handle`` (the fake account, wrapped by the test)."""
        transport = httpx.MockTransport(handle)  # type: ignore[arg-type]
        client = HubSpotClient("https://hs.test", "t", transport=transport, retry=RetryPolicy(1), pacer=pacer)
        schema = AccountSchema(pipeline_id="p-1", stage_ids=STAGES)
        return PlanRunner(
            HubSpotApi(client), IdMap(self.sent, "hubspot.ids"), schema, self.letters, clock=self.clock,
            repair=repair,
        )  # fmt: skip

    def round(self, *commands: AnyCommand) -> list[Source]:
        items = []
        for command in commands:
            items.append((command, Position(0, self.offset)))
            self.offset += 1
        return items


def contact(n: int) -> RecordRef:
    return RecordRef(object_type="contacts", id_property="email", id_value=f"c{n}@example.com")


def deal(n: int) -> RecordRef:
    return RecordRef(object_type="deals", id_property="shopify_deal_key", id_value=f"order:{n}")


def upsert(ref: RecordRef, **props: str) -> Upsert:
    return Upsert(record=ref, properties={ref.id_property: ref.id_value, **props})


async def test_a_round_writes_records_then_links_them_and_learns_their_ids() -> None:
    rig = Rig()
    runner = rig.runner()
    stage = {"dealstage": "Processed", "pipeline": "Ecommerce Pipeline"}
    link = Associate(record=deal(1), to=contact(1), association_type_id=3)
    items = rig.round(upsert(contact(1)), upsert(deal(1), **stage), link)
    await runner.apply(items)
    deal_id = rig.hubspot.records["deals"]["order:1"]
    contact_id = rig.hubspot.records["contacts"]["c1@example.com"]
    assert rig.hubspot.props[deal_id]["dealstage"] == "s-processed", "stage labels become the account's ids"
    assert rig.hubspot.props[deal_id]["pipeline"] == "p-1"
    assert rig.hubspot.links == {(deal_id, contact_id, 3)}
    assert (runner.stats.upserted, runner.stats.linked, runner.stats.dead_lettered) == (2, 1, 0)
    assert runner.ids.get(deal(1).key) == deal_id and not runner.pending()
    assert {key for _, _, key in rig.sent.records} == {deal(1).key.encode(), contact(1).key.encode()}
    calls = rig.hubspot.calls
    assert calls.index(paths.batch("deals", "upsert")) < calls.index(
        paths.association_batch("deals", "contacts", "create")
    ), "both ends written before the link"


async def test_an_input_hubspot_refuses_is_dead_lettered_and_the_others_applied() -> None:
    rig = Rig()
    rig.hubspot.refuse["order:2"] = "VALIDATION_ERROR"
    runner = rig.runner()
    await runner.apply(rig.round(upsert(deal(1)), upsert(deal(2)), upsert(deal(3))))
    assert set(rig.hubspot.records["deals"]) == {"order:1", "order:3"}
    (letter,) = rig.letters.bodies()
    assert letter["category"] == "VALIDATION_ERROR" and letter["reason"] == "HubSpot rejected the record"
    assert letter["command"]["record"]["id_value"] == "order:2" and letter["source"] == {
        "partition": 0,
        "offset": 1,
    }
    assert (runner.stats.upserted, runner.stats.dead_lettered) == (2, 1)


async def test_a_transient_failure_of_one_input_is_held_and_retried_when_the_clock_says() -> None:
    rig = Rig()
    rig.hubspot.fail_times["order:1"] = 1
    runner = rig.runner()
    await runner.apply(rig.round(upsert(deal(1)), upsert(deal(2))))
    assert set(rig.hubspot.records["deals"]) == {"order:2"} and not rig.letters.delivered
    assert runner.held_positions() == [Position(0, 0)], "its partition's commit waits for it"
    await runner.apply([])  # not due yet: the backoff is a second on the runner's clock
    assert "order:1" not in rig.hubspot.records["deals"]
    rig.clock.advance(timedelta(seconds=1))
    await runner.apply([])
    assert "order:1" in rig.hubspot.records["deals"] and not runner.pending()
    assert (runner.stats.upserted, runner.stats.retried_inputs, runner.stats.dead_lettered) == (2, 1, 0)


async def test_an_update_of_a_record_hubspot_deleted_is_skipped_never_recreated() -> None:
    rig = Rig()
    runner = rig.runner()
    gone = Upsert(record=contact(5), properties={"firstname": "Ann"}, create_if_missing=False)
    await runner.apply(rig.round(gone))
    assert "c5@example.com" not in rig.hubspot.records.get("contacts", {})
    assert (runner.stats.skipped_deleted, runner.stats.dead_lettered) == (1, 0)


async def test_a_link_whose_end_never_comes_waits_then_is_dead_lettered() -> None:
    rig = Rig()
    runner = rig.runner()
    await runner.apply(
        rig.round(upsert(deal(1)), Associate(record=deal(1), to=contact(9), association_type_id=3))
    )
    assert runner.stats.waiting_links == 1 and not rig.letters.delivered
    rig.clock.advance(timedelta(seconds=30))
    await runner.apply([])
    assert runner.stats.waiting_links == 1, "within the link wait it keeps waiting"
    rig.clock.advance(timedelta(seconds=31))
    await runner.apply([])
    (letter,) = rig.letters.bodies()
    assert letter["reason"] == f"association end {contact(9).key} does not exist in HubSpot"
    assert not runner.pending() and rig.hubspot.links == set()


async def test_a_round_hubspot_cannot_take_is_undone_as_a_whole() -> None:
    rig = Rig()
    rig.hubspot.fail_times["order:1"] = 1
    runner = rig.runner()
    await runner.apply(rig.round(upsert(deal(1))))
    before = (list(runner.held), runner.stats.upserted, len(rig.sent.records))
    rig.hubspot.down = True
    rig.clock.advance(timedelta(seconds=1))
    with pytest.raises(HubSpotUnavailableError):
        await runner.apply(rig.round(upsert(deal(2))))
    assert (list(runner.held), runner.stats.upserted, len(rig.sent.records)) == before
    assert runner.stats.windows == 1 and not rig.letters.delivered, "nothing of the undone round counted"
    rig.hubspot.down = False
    await runner.apply(rig.round(upsert(deal(2))))
    assert set(rig.hubspot.records["deals"]) == {"order:1", "order:2"}


async def test_dead_letters_kafka_does_not_take_undo_the_round() -> None:
    rig = Rig()
    rig.hubspot.refuse["order:1"] = "VALIDATION_ERROR"
    rig.letters.fail = True
    runner = rig.runner()
    with pytest.raises(KafkaDeliveryError, match="did not acknowledge 1 of 1 dead letters"):
        await runner.apply(rig.round(upsert(deal(1)), upsert(deal(2))))
    assert runner.stats.dead_lettered == 0 and runner.stats.upserted == 0
    # What HubSpot confirmed and Kafka acknowledged stays known (the record is in HubSpot): the
    # round read again finds it there; nothing else of the undone round counts.
    assert runner.ids.get(deal(2).key) == rig.hubspot.records["deals"]["order:2"]
    rig.letters.fail = False
    await runner.apply(rig.round(upsert(deal(1)), upsert(deal(2))))
    assert runner.stats.dead_lettered == 1 and runner.stats.upserted == 1
    assert [b["command"]["record"]["id_value"] for b in rig.letters.bodies()] == ["order:1"]


async def test_records_of_the_topic_that_are_not_commands_are_dead_lettered_with_the_round() -> None:
    rig = Rig()
    runner = rig.runner()
    raw = DeadLetter(b'{"reason": "not a command: bad"}', None, "a record that is not a command")
    await runner.apply([], [raw])
    assert rig.letters.delivered == [raw] and runner.stats.dead_lettered == 1


def reads(rig: Rig) -> list[str]:
    return [c for c in rig.hubspot.calls if c.endswith("/batch/read")]


async def test_a_link_whose_end_comes_a_round_later_is_made_without_asking_hubspot() -> None:
    """The end's command is on another partition, read a round later: the link waits on the id
    map, not on ``batch/read`` polls, and is made the round the end is written."""
    rig = Rig()
    runner = rig.runner()
    await runner.apply(
        rig.round(upsert(deal(1)), Associate(record=deal(1), to=contact(1), association_type_id=3))
    )
    assert runner.stats.waiting_links == 1
    for _ in range(3):  # rounds with nothing new: looked at, never asked for
        rig.clock.advance(timedelta(seconds=1))
        await runner.apply([])
    await runner.apply(rig.round(upsert(contact(1))))
    assert not runner.pending() and len(rig.hubspot.links) == 1
    assert reads(rig) == [], "no look-up of an end that was on its way"


async def test_an_unknown_end_is_asked_for_twice_then_the_link_is_dead_lettered() -> None:
    """Once after ``READ_ENDS_AFTER_S`` (an end written some other way is found), once when the
    link wait is over; never more, however many rounds pass."""
    rig = Rig()
    runner = rig.runner()
    await runner.apply(
        rig.round(upsert(deal(1)), Associate(record=deal(1), to=contact(9), association_type_id=3))
    )
    for _ in range(40):
        rig.clock.advance(timedelta(seconds=1))
        await runner.apply([])
    assert len(reads(rig)) == 1 and runner.stats.waiting_links == 1
    rig.clock.advance(timedelta(seconds=21))
    await runner.apply([])
    assert len(reads(rig)) == 2 and [b["reason"] for b in rig.letters.bodies()] == [
        f"association end {contact(9).key} does not exist in HubSpot"
    ]


async def test_an_end_written_some_other_way_is_found_by_the_first_look_up() -> None:
    rig = Rig()
    runner = rig.runner()
    rig.hubspot.records["contacts"] = {"c9@example.com": "77"}  # in HubSpot, not in the id map
    await runner.apply(
        rig.round(upsert(deal(1)), Associate(record=deal(1), to=contact(9), association_type_id=3))
    )
    rig.clock.advance(timedelta(seconds=5))
    await runner.apply([])
    assert not runner.pending() and {to for _, to, _ in rig.hubspot.links} == {"77"}
    assert len(reads(rig)) == 1


async def test_a_link_waits_for_its_end_while_the_worker_is_behind_then_for_the_link_wait() -> None:
    """The loss a 100,000-customer import found: deal to contact links dead-lettered after the
    link wait while the worker, two minutes behind, had not yet derived the contacts' upserts.
    With the worker's progress (``upstream``), the wait counts from the moment the worker had
    handled everything that existed when the link was first seen."""
    rig = Rig()
    runner = rig.runner()
    settled = [float("-inf")]
    runner.upstream = lambda: settled[0]
    link = Associate(record=deal(1), to=contact(9), association_type_id=3)
    seen = rig.clock.monotonic()
    await runner.apply(rig.round(upsert(deal(1)), link))
    for _ in range(5):  # five link waits: the worker still behind, the link still waits
        rig.clock.advance(timedelta(seconds=60))
        await runner.apply([])
    assert runner.stats.waiting_links == 1 and not rig.letters.delivered
    settled[0] = seen  # the worker has handled everything appended before the link was seen
    rig.clock.advance(timedelta(seconds=1))
    await runner.apply([])
    rig.clock.advance(timedelta(seconds=59))
    await runner.apply([])
    assert runner.stats.waiting_links == 1, "then it waits a link wait more, for the writers"
    await runner.apply(rig.round(upsert(contact(9))))
    assert not runner.pending() and len(rig.hubspot.links) == 1 and not rig.letters.delivered


async def test_once_the_worker_settled_past_it_a_link_whose_end_never_comes_is_dead_lettered() -> None:
    rig = Rig()
    runner = rig.runner()
    runner.upstream = rig.clock.monotonic  # the worker keeps up: settled is always now
    await runner.apply(
        rig.round(upsert(deal(1)), Associate(record=deal(1), to=contact(9), association_type_id=3))
    )
    for _ in range(3):
        rig.clock.advance(timedelta(seconds=61))
        await runner.apply([])
    assert [b["reason"] for b in rig.letters.bodies()] == [
        f"association end {contact(9).key} does not exist in HubSpot"
    ]


async def test_a_worker_that_never_settles_holds_a_link_for_the_cap_at_most() -> None:
    rig = Rig()
    runner = rig.runner()
    runner.upstream = lambda: float("-inf")  # its worker is down
    await runner.apply(
        rig.round(upsert(deal(1)), Associate(record=deal(1), to=contact(9), association_type_id=3))
    )
    rig.clock.advance(timedelta(seconds=60 * LINK_WAIT_CAP - 1))
    await runner.apply([])
    assert not rig.letters.delivered and runner.stats.waiting_links == 1
    rig.clock.advance(timedelta(seconds=2))
    await runner.apply([])
    assert len(rig.letters.bodies()) == 1 and not runner.pending()


def pseudonymous(n: int) -> tuple[RecordRef, RecordRef]:
    """G1: contact ``n``'s own ref (pseudonym key, the address along) and a B2B company's link end
    to it (the pseudonym alone, ``RecordRef.by_pseudonym_only``)."""
    key = f"p1:contact{n}pseudonym"
    own = RecordRef(object_type="contacts", id_property="email", id_value=key, address=f"c{n}@example.com")
    return own, RecordRef(object_type="contacts", id_property="email", id_value=key)


def company(n: int) -> RecordRef:
    return RecordRef(object_type="companies", id_property="shopify_company_id", id_value=str(n))


async def test_a_pseudonym_only_end_is_linked_once_its_contact_s_upsert_puts_its_id() -> None:
    """Whichever round the contact's own upsert comes in (before the link, or after it), the
    link finds the id in the id map, under the pseudonym key both refs share."""
    rig = Rig()
    runner = rig.runner()
    own, end = pseudonymous(1)
    await runner.apply(
        rig.round(upsert(company(1)), Associate(record=company(1), to=end, association_type_id=280))
    )
    assert runner.stats.waiting_links == 1
    rig.clock.advance(timedelta(seconds=5))
    await runner.apply([])
    await runner.apply(rig.round(Upsert(record=own, properties={"email": "c1@example.com"})))
    assert not runner.pending() and len(rig.hubspot.links) == 1
    assert rig.hubspot.records["contacts"] == {"c1@example.com": runner.ids.get(end.key)}
    assert reads(rig) == [], "HubSpot is never asked by a pseudonym"


async def test_a_pseudonym_only_end_never_upserted_is_never_read_then_dead_lettered() -> None:
    """HubSpot holds the contact (written some other way), but the writer cannot ask for it by
    the pseudonym: it waits out the link wait on the id map alone, then dead-letters the link
    with why, and never sends the pseudonym to HubSpot as an email."""
    rig = Rig()
    rig.hubspot.records["contacts"] = {"c9@example.com": "77", "p1:contact9pseudonym": "78"}
    runner = rig.runner()
    _, end = pseudonymous(9)
    await runner.apply(
        rig.round(upsert(company(1)), Associate(record=company(1), to=end, association_type_id=280))
    )
    for _ in range(130):
        rig.clock.advance(timedelta(seconds=1))
        await runner.apply([])
    assert reads(rig) == [] and rig.hubspot.links == set()
    assert [b["reason"] for b in rig.letters.bodies()] == [
        f"association end {end.key} was never upserted (a contact named by its pseudonym alone is "
        "known only from its own upsert)"
    ]


async def test_a_link_whose_end_this_writer_holds_for_a_retry_outwaits_the_link_wait() -> None:
    """The end failed transiently and is held: it is known to be on its way, so the link is made
    when it is written, however long that took, and HubSpot is not asked for it meanwhile."""
    rig = Rig()
    rig.hubspot.fail_times["c1@example.com"] = 3
    runner = rig.runner()
    runner.retry_backoff = Backoff(base_s=40.0, cap_s=40.0)
    await runner.apply(
        rig.round(
            upsert(contact(1)),
            upsert(deal(1)),
            Associate(record=deal(1), to=contact(1), association_type_id=3),
        )
    )
    for _ in range(3):
        rig.clock.advance(timedelta(seconds=41))
        await runner.apply([])
    assert not runner.pending() and len(rig.hubspot.links) == 1 and not rig.letters.delivered
    assert reads(rig) == []


async def test_with_the_worker_s_progress_a_link_whose_end_is_held_for_a_retry_still_outwaits_it() -> None:
    """Found in review: the link's final look-up came before the worker settled, and a later
    round dead-lettered it while its end (arrived meanwhile, refused transiently) was held."""
    rig = Rig()
    runner = rig.runner()
    settled = [float("-inf")]  # the worker behind at first
    runner.upstream = lambda: settled[0]
    runner.retry_backoff = Backoff(base_s=40.0, cap_s=40.0)
    await runner.apply(
        rig.round(upsert(deal(1)), Associate(record=deal(1), to=contact(1), association_type_id=3))
    )
    rig.clock.advance(timedelta(seconds=61))
    await runner.apply([])  # the final look-up: not in HubSpot; not proven yet, so it waits
    rig.hubspot.fail_times["c1@example.com"] = 4
    await runner.apply(rig.round(upsert(contact(1))))  # the end comes, and is held for a retry
    settled[0] = rig.clock.monotonic()  # the worker has caught up: proven from here
    for _ in range(4):
        rig.clock.advance(timedelta(seconds=41))
        await runner.apply([])
    assert not rig.letters.delivered and not runner.pending() and len(rig.hubspot.links) == 1


async def test_a_line_item_waits_for_its_product_on_the_id_map_and_goes_the_round_after_it_lands() -> None:
    rig = Rig()
    runner = rig.runner()
    product = RecordRef(object_type="products", id_property="shopify_product_key", id_value="variant:5")
    line = RecordRef(
        object_type="line_items", id_property="shopify_line_item_key", id_value="order:1|variant:5"
    )
    await runner.apply(rig.round(upsert(line, shopify_variant_id="5", quantity="1")))
    assert runner.stats.held_records == 1 and reads(rig) == [], "not asked for: on its way"
    await runner.apply(rig.round(upsert(product, name="Hat")))
    await runner.apply([])  # the next round, long before the line item's backoff is over
    assert not runner.pending()
    line_id = rig.hubspot.records["line_items"]["order:1|variant:5"]
    assert rig.hubspot.props[line_id]["hs_product_id"] == rig.hubspot.records["products"]["variant:5"]


def line_and_product() -> tuple[RecordRef, RecordRef]:
    product = RecordRef(object_type="products", id_property="shopify_product_key", id_value="variant:5")
    line = RecordRef(
        object_type="line_items", id_property="shopify_line_item_key", id_value="order:1|variant:5"
    )
    return line, product


async def rounds(rig: Rig, runner: PlanRunner, count: int, seconds: float) -> None:
    """``count`` empty rounds, ``seconds`` apart (held records retried as their backoff says)."""
    for _ in range(count):
        rig.clock.advance(timedelta(seconds=seconds))
        await runner.apply([])


async def test_without_the_worker_s_progress_a_line_item_whose_product_never_comes_goes_without_it() -> None:
    """A product that is never synced (or was deleted) must not hold its line item's partition
    for ever: after ``PRODUCT_WAIT_TRIES`` rounds, HubSpot asked on the last, it goes without."""
    rig = Rig()
    runner = rig.runner()
    line, _ = line_and_product()
    await runner.apply(rig.round(upsert(line, shopify_variant_id="5", quantity="1")))
    await rounds(rig, runner, PRODUCT_WAIT_TRIES, 2)
    assert not runner.pending() and len(reads(rig)) == 1, "HubSpot asked once, on the last try"
    line_id = rig.hubspot.records["line_items"]["order:1|variant:5"]
    assert "hs_product_id" not in rig.hubspot.props[line_id]


async def test_a_line_item_waits_for_its_product_while_the_worker_is_behind() -> None:
    """Found in review, the links' loss for line items: the products and journeys stages run
    side by side, and with a backlog the product's upsert can come minutes after its line item.
    A wall-clock wait (half a minute) wrote the line item without its product for good. With the
    worker's progress it waits as a link does: until a link wait after the worker settled past
    the line item's first sighting."""
    rig = Rig()
    runner = rig.runner()
    settled = [float("-inf")]
    runner.upstream = lambda: settled[0]
    line, product = line_and_product()
    seen = rig.clock.monotonic()
    await runner.apply(rig.round(upsert(line, shopify_variant_id="5", quantity="1")))
    await rounds(rig, runner, PRODUCT_WAIT_TRIES + 3, 61)  # minutes: the worker still behind
    assert runner.stats.held_records == 1 and "line_items" not in rig.hubspot.records
    await runner.apply(rig.round(upsert(product, name="Hat")))  # the worker got to it
    await runner.apply([])
    assert not runner.pending()
    line_id = rig.hubspot.records["line_items"]["order:1|variant:5"]
    assert rig.hubspot.props[line_id]["hs_product_id"] == rig.hubspot.records["products"]["variant:5"]

    # A product that never comes: written without it a link wait after the worker settled.
    other = RecordRef(
        object_type="line_items", id_property="shopify_line_item_key", id_value="order:2|variant:6"
    )
    await runner.apply(rig.round(upsert(other, shopify_variant_id="6", quantity="1")))
    await rounds(rig, runner, PRODUCT_WAIT_TRIES + 2, 61)
    assert runner.pending(), "the worker behind: still waiting"
    settled[0] = rig.clock.monotonic()
    await rounds(rig, runner, 1, 1)  # proven from here
    assert runner.pending(), "a link wait more, for the writers"
    await rounds(rig, runner, 2, 61)
    assert not runner.pending() and "order:2|variant:6" in rig.hubspot.records["line_items"]
    assert seen < settled[0]


async def test_a_rounds_calls_run_side_by_side_within_the_in_flight_limit() -> None:
    """Three chunks of contacts and one of deals: several calls in flight at once, never more
    than the pacer's ``max_in_flight``; links only once both ends' calls are done."""
    rig = Rig()
    in_flight, most = 0, 0

    async def handle(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        return rig.hubspot.handle(request)

    runner = rig.runner_over(handle, pacer=RatePacer(limit=1000, max_in_flight=3))
    commands: list[AnyCommand] = [upsert(contact(n)) for n in range(250)]
    commands.append(upsert(deal(1)))
    commands.append(Associate(record=deal(1), to=contact(0), association_type_id=3))
    await runner.apply(rig.round(*commands))
    assert most == 3 and runner.stats.upserted == 251 and runner.stats.linked == 1
    assert rig.hubspot.calls[-1].endswith("/batch/create")


async def test_a_failing_call_undoes_the_round_with_nothing_of_it_still_running() -> None:
    rig = Rig()
    runner = rig.runner()
    rig.hubspot.down = True
    with pytest.raises(HubSpotUnavailableError):
        await runner.apply(rig.round(*[upsert(contact(n)) for n in range(300)]))
    calls = len(rig.hubspot.calls)
    await asyncio.sleep(0.01)
    assert len(rig.hubspot.calls) == calls, "no call of the undone round goes on"
    assert runner.stats.upserted == 0 and not rig.sent.records


async def test_a_property_deleted_under_the_writer_is_repaired_once_for_all_the_rounds_calls() -> None:
    """Three chunks of contacts sent side by side, each refused for a property of the set-up that
    is gone: the drift hook runs once, every chunk is sent again after it, nothing dead-lettered."""
    rig = Rig()
    gone = {"shopify_customer_id"}
    refusal = {
        "status": "error", "category": "VALIDATION_ERROR",
        "message": 'Property values were not valid: [{"isValid":false,"message":"Property '
        '\\"shopify_customer_id\\" does not exist","error":"PROPERTY_DOESNT_EXIST",'
        '"name":"shopify_customer_id"}]',
    }  # fmt: skip

    async def handle(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.001)  # the calls overlap
        if request.url.path.endswith("/batch/upsert") and gone:
            return httpx.Response(400, json=refusal)
        return rig.hubspot.handle(request)

    repairs: list[dict[str, Any]] = []

    async def repair(body: dict[str, Any]) -> AccountSchema | None:
        repairs.append(body)
        gone.clear()  # the set-up recreated it
        return AccountSchema("p-1", STAGES)

    runner = rig.runner_over(handle, repair=repair)
    await runner.apply(rig.round(*[upsert(contact(n), shopify_customer_id=str(n)) for n in range(250)]))
    assert len(repairs) == 1 and runner.stats.upserted == 250 and runner.stats.dead_lettered == 0


async def test_a_refusal_the_drift_hook_cannot_repair_is_narrowed_down_and_dead_lettered() -> None:
    """A whole batch refused for one record's value: the hook says it is not drift (None), so the
    batch is halved as before, the good record written and the bad one dead-lettered."""
    rig = Rig()
    bad = {"status": "error", "category": "VALIDATION_ERROR", "message": "Property values were not valid"}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/batch/upsert") and b"c1@example.com" in request.content:
            return httpx.Response(400, json=bad)
        return rig.hubspot.handle(request)

    asked: list[dict[str, Any]] = []

    async def not_drift(body: dict[str, Any]) -> AccountSchema | None:
        asked.append(body)
        return None

    runner = rig.runner_over(handle, repair=not_drift)
    await runner.apply(rig.round(upsert(contact(1)), upsert(contact(2))))
    assert runner.stats.upserted == 1 and runner.stats.dead_lettered == 1
    assert asked and all(body == bad for body in asked)
