"""The communication preferences API (email subscription statuses), in HubSpot's current version.

HubSpot's current reference serves it under date-based paths (``/communication-preferences/
2026-03/...``; ``v4`` is the same API's older name), the v3 ``subscribe``/``unsubscribe`` pair being
"legacy". A status belongs to an email address and a subscription type, not to a contact record
(it is kept for an address no contact has). The sandbox serves what the writer uses, with
HubSpot's bodies and answers:

- ``GET /definitions``: the account's subscription types (two here, :data:`DEFINITIONS`);
- ``POST /statuses/batch/read?channel=EMAIL`` and ``/statuses/batch/unsubscribe-all/read``:
  each address's status per type, and its opt-out of all email (``wideStatuses``);
- ``POST /statuses/batch/write`` and ``POST /statuses/{subscriberIdString}``: set a status.
  Unlike v3's ``subscribe``, this version *does* resubscribe an address that opted out
  (``setStatusSuccessReason: RESUBSCRIBE_OCCURRED``): a writer must not ask it to;
- ``POST /statuses/{subscriberIdString}/unsubscribe-all?channel=EMAIL``: the address opts out
  of all email (what a contact's unsubscribe link does).

Refusals (400 ``VALIDATION_ERROR``, the whole call; ``hubspot_sandbox.rules``): a channel other
than ``EMAIL``, a ``statusState`` or ``legalBasis`` outside HubSpot's enumerations, a
``subscriptionId`` that is not an integer naming one of the account's types, an address that is
not an email address, no ``legalBasis`` on an account with GDPR features on, more than 100 inputs.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

from aiohttp import web

from hubspot_sandbox.errors import JSON, validation
from hubspot_sandbox.responses import json_response, read_body
from hubspot_sandbox.state import STATE
from hubspot_sandbox.timestamps import iso, now_ms

routes = web.RouteTableDef()
BASE = "/communication-preferences/{version}"
STATUS_STATES = ("NOT_SPECIFIED", "SUBSCRIBED", "UNSUBSCRIBED")
LEGAL_BASES = (
    "CONSENT_WITH_NOTICE", "LEGITIMATE_INTEREST_CLIENT", "LEGITIMATE_INTEREST_OTHER",
    "LEGITIMATE_INTEREST_PQL", "NON_GDPR", "PERFORMANCE_OF_CONTRACT", "PROCESS_AND_STORE",
)  # fmt: skip
MAX_INPUTS = 100
DEFINITIONS: tuple[JSON, ...] = (
    {"id": "7001001", "name": "Marketing Information", "description": "Marketing offers and updates.",
     "purpose": "Marketing", "communicationMethod": "Email", "isActive": True, "isDefault": True,
     "isInternal": False},
    {"id": "7001002", "name": "One to One", "description": "One to one emails.", "purpose": "Sales",
     "communicationMethod": "Email", "isActive": True, "isDefault": True, "isInternal": True},
)  # fmt: skip
"""The account's subscription types (HubSpot's two defaults, with the sandbox's ids)."""
_VERSION = re.compile(r"v4|\d{4}-\d{2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CREATED = "2024-01-01T00:00:00.000Z"


def _version(request: web.Request) -> None:
    if not _VERSION.fullmatch(request.match_info["version"]):
        raise web.HTTPNotFound()


def _channel(value: object) -> None:
    if value != "EMAIL":
        raise validation(f"channel must be EMAIL, not {value!r}")


def _address(value: object) -> str:
    if not isinstance(value, str) or not _EMAIL.fullmatch(value.strip()):
        raise validation("subscriberIdString must be an email address")
    return value.strip().lower()


def _definition(value: object) -> JSON:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else None
    found = next((d for d in DEFINITIONS if d["id"] == text), None)
    if found is None:
        raise validation(f"subscriptionId {value!r} is not a subscription type of this account")
    return found


def _inputs(body: JSON) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_INPUTS:
        raise validation(f"inputs must be a list of 1 to {MAX_INPUTS} entries")
    return inputs


def _status(conn: sqlite3.Connection, email: str, subscription: JSON) -> JSON:
    row = conn.execute(
        "SELECT status, legal_basis, legal_basis_explanation, updated_ms FROM subscription_statuses"
        " WHERE email = ? AND subscription_id = ?",
        (email, int(subscription["id"])),
    ).fetchone()
    status: JSON = {
        "channel": "EMAIL", "subscriberIdString": email, "subscriptionId": int(subscription["id"]),
        "subscriptionName": subscription["name"], "source": "Public API",
        "status": row[0] if row else "NOT_SPECIFIED", "timestamp": iso(row[3] if row else now_ms()),
    }  # fmt: skip
    if row and row[1]:
        status["legalBasis"], status["legalBasisExplanation"] = row[1], row[2]
    return status


def _opted_out(conn: sqlite3.Connection, email: str) -> int | None:
    row = conn.execute("SELECT updated_ms FROM wide_opt_outs WHERE email = ?", (email,)).fetchone()
    return None if row is None else int(row[0])


def _checked(request: JSON, gdpr: bool, email: object = None) -> tuple[str, JSON, str, JSON]:
    """One status request, refused whole (400) where HubSpot refuses it."""
    _channel(request.get("channel"))
    state = request.get("statusState")
    if state not in STATUS_STATES:
        raise validation(f"statusState must be one of {', '.join(STATUS_STATES)}")
    subscription = _definition(request.get("subscriptionId"))
    basis = request.get("legalBasis")
    if basis is not None and basis not in LEGAL_BASES:
        raise validation(f"legalBasis must be one of {', '.join(LEGAL_BASES)}")
    if gdpr and basis is None:
        raise validation("legalBasis is required: this account has GDPR features turned on")
    address = _address(request.get("subscriberIdString") if email is None else email)
    return address, subscription, str(state), request


def _apply(conn: sqlite3.Connection, address: str, subscription: JSON, state: str, request: JSON) -> JSON:
    before = _status(conn, address, subscription)["status"]
    wide = _opted_out(conn, address) is not None
    if state == before and not (wide and state == "SUBSCRIBED"):
        reason = "NO_STATUS_CHANGE"
    elif state == "SUBSCRIBED" and (before == "UNSUBSCRIBED" or wide):
        reason = "RESUBSCRIBE_OCCURRED"  # this version resubscribes (v3's subscribe refused to)
    else:
        reason = "REQUESTED_CHANGE_OCCURRED"
    if reason != "NO_STATUS_CHANGE":
        if state == "SUBSCRIBED":
            conn.execute("DELETE FROM wide_opt_outs WHERE email = ?", (address,))
        conn.execute(
            "INSERT OR REPLACE INTO subscription_statuses VALUES (?, ?, ?, ?, ?, ?)",
            (address, int(subscription["id"]), state, request.get("legalBasis"),
             request.get("legalBasisExplanation"), now_ms()),
        )  # fmt: skip
    return {**_status(conn, address, subscription), "setStatusSuccessReason": reason}


def _answer(results: list[JSON], started: int) -> web.Response:
    return json_response(
        {"status": "COMPLETE", "results": results, "startedAt": iso(started), "completedAt": iso(now_ms())}
    )


@routes.get(BASE + "/definitions")
async def definitions(request: web.Request) -> web.Response:
    _version(request)
    started = now_ms()
    return _answer([{**d, "createdAt": _CREATED, "updatedAt": _CREATED} for d in DEFINITIONS], started)


@routes.post(BASE + "/statuses/batch/read")
async def batch_read(request: web.Request) -> web.Response:
    _version(request)
    _channel(request.query.get("channel"))
    started, addresses = now_ms(), [_address(e) for e in _inputs(await read_body(request))]

    def read(conn: sqlite3.Connection) -> list[JSON]:
        return [{"subscriberIdString": a, "statuses": [_status(conn, a, d) for d in DEFINITIONS]}
                for a in dict.fromkeys(addresses)]  # fmt: skip

    return _answer(request.app[STATE].store.run(read), started)


@routes.post(BASE + "/statuses/batch/unsubscribe-all/read")
async def batch_read_wide(request: web.Request) -> web.Response:
    _version(request)
    _channel(request.query.get("channel"))
    started, addresses = now_ms(), [_address(e) for e in _inputs(await read_body(request))]

    def read(conn: sqlite3.Connection) -> list[JSON]:
        found = []
        for address in dict.fromkeys(addresses):
            at = _opted_out(conn, address)
            wide = [] if at is None else [
                {"channel": "EMAIL", "subscriberIdString": address, "status": "UNSUBSCRIBED",
                 "wideStatusType": "PORTAL_WIDE", "timestamp": iso(at)}
            ]  # fmt: skip
            found.append({"subscriberIdString": address, "wideStatuses": wide})
        return found

    return _answer(request.app[STATE].store.run(read), started)


@routes.post(BASE + "/statuses/batch/write")
async def batch_write(request: web.Request) -> web.Response:
    _version(request)
    state = request.app[STATE]
    started, inputs = now_ms(), _inputs(await read_body(request))
    gdpr = state.config.gdpr_enabled
    checked = [_checked(i if isinstance(i, dict) else {}, gdpr) for i in inputs]
    results = state.store.run(lambda conn: [_apply(conn, *c) for c in checked])
    return _answer(results, started)


@routes.post(BASE + "/statuses/{subscriber}")
async def write_one(request: web.Request) -> web.Response:
    _version(request)
    state = request.app[STATE]
    started = now_ms()
    checked = _checked(await read_body(request), state.config.gdpr_enabled, request.match_info["subscriber"])
    return _answer([state.store.run(lambda conn: _apply(conn, *checked))], started)


@routes.post(BASE + "/statuses/{subscriber}/unsubscribe-all")
async def unsubscribe_all(request: web.Request) -> web.Response:
    _version(request)
    _channel(request.query.get("channel"))
    started, address = now_ms(), _address(request.match_info["subscriber"])

    def opt_out(conn: sqlite3.Connection) -> list[JSON]:
        at = now_ms()
        conn.execute("INSERT OR REPLACE INTO wide_opt_outs VALUES (?, ?)", (address, at))
        for d in DEFINITIONS:
            conn.execute(
                "INSERT OR REPLACE INTO subscription_statuses VALUES (?, ?, 'UNSUBSCRIBED', NULL, NULL, ?)",
                (address, int(d["id"]), at),
            )
        return [{**_status(conn, address, d), "setStatusSuccessReason": "UNSUBSCRIBE_FROM_ALL_OCCURRED"}
                for d in DEFINITIONS]  # fmt: skip

    return _answer(request.app[STATE].store.run(opt_out), started)


def all_statuses(conn: sqlite3.Connection) -> list[JSON]:
    """Every status set, for the dump (addresses and types, ordered)."""
    rows = conn.execute(
        "SELECT email, subscription_id, status, legal_basis FROM subscription_statuses"
        " ORDER BY email, subscription_id"
    ).fetchall()
    wide = {r[0] for r in conn.execute("SELECT email FROM wide_opt_outs").fetchall()}
    return [
        {
            "email": r[0],
            "subscriptionId": r[1],
            "status": r[2],
            "legalBasis": r[3],
            "optedOutOfAll": r[0] in wide,
        }
        for r in rows
    ]
