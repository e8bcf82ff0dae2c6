"""HubSpot's half of a redact, opt-in (SPEC G1, ``SHOPSYNC_REDACT_HUBSPOT``, off by default).

HubSpot's records belong to the merchant: a ``customers/redact`` shreds the product's own copies
(``handlers.redactor``) and leaves the merchant's CRM alone, unless the merchant turns this on.
Then the redactor, once it has shredded the customer's keys, permanently deletes their HubSpot contact
with HubSpot's GDPR delete (``POST /crm/v3/objects/contacts/gdpr-delete`` with the contact's id:
"permanently delete a contact and all associated content to follow GDPR",
https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/gdpr/gdpr-delete-contact;
204 with no body; the private app needs ``crm.objects.contacts.write``).

Which contact: the redact carries the customer's email only as its pseudonym, so the contact is
found in the writer's id map (``hubspot.ids``), whose contact keys are ``contacts:email:<email or
its pseudonym>`` (``SHOPSYNC_REDACTABLE``): each is pseudonymised the same way and compared. The
contact is never asked for by email: the product does not hold the address any more (it reads the
request pseudonymised), and a GDPR delete by an email HubSpot does not know blocklists that email
in the account, a side effect no one asked for. A customer the writer never wrote (no id in the
map) has no contact of the product's making: nothing is deleted, and the count says 0.

The delete follows the shredding, so the writer (which reads the key topic before every round)
sends nothing of the customer's from its next round on. A round already sending when the keys
went (a throttled round can last minutes) may still re-create the contact after the delete: the
redactor does not wait for the writers to commit past the tombstone (not built; README).

One contact per email across shops (X3): a redact from one shop deletes the contact the other
shops' records fed too. It is the merchant's account and the merchant's setting; the README says
so. ``shop/redact`` deletes nothing in HubSpot (the account outlives one shop's uninstall).
"""

from __future__ import annotations

import asyncio
from typing import Any

from config import Settings
from handlers.hubspot_client import HubSpotClient
from handlers.id_map import CONTACT_KEY_PREFIX, IdMap
from schemas.compliance import ComplianceRequest
from streams.privacy import PSEUDONYM_PREFIX, pseudonym
from streams.topics import topic_name

GDPR_DELETE = "/crm/v3/objects/contacts/gdpr-delete"
EMAIL_KEY_PREFIX = f"{CONTACT_KEY_PREFIX}email:"


class _ReadOnly:
    """The id map's producer when it is only read (the redactor never writes the writer's map)."""

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None
    ) -> asyncio.Future[Any]:
        raise RuntimeError("the redactor does not write the id map")


def contact_ids(ids: dict[str, str], secret: bytes, email_pseudonym: str) -> list[str]:
    """The HubSpot ids of the id map's contacts whose email has this pseudonym (under either
    keying: the email itself, or its pseudonym), sorted. Pure: the id map's live entries in."""
    found = set()
    for key, hubspot_id in ids.items():
        if not key.startswith(EMAIL_KEY_PREFIX):
            continue
        value = key[len(EMAIL_KEY_PREFIX) :]
        named = value if value.startswith(PSEUDONYM_PREFIX) else pseudonym(secret, "email", value)
        if named == email_pseudonym:
            found.add(hubspot_id)
    return sorted(found)


class HubSpotEraser:
    """GDPR-deletes a redacted customer's HubSpot contact. The id map is read afresh for each
    request that names an email (redacts are rare; a read of the compacted map costs about a
    second per 100,000 contacts), so a contact the writer made a moment ago is found too."""

    def __init__(self, client: HubSpotClient, bootstrap: str, ids_topic: str, secret: bytes) -> None:
        self.client = client
        self._bootstrap = bootstrap
        self._ids_topic = ids_topic
        self._secret = secret

    async def erase(self, request: ComplianceRequest) -> int:
        """Delete the request's customer from HubSpot; the number of contacts deleted. Raises
        (``HubSpotUnavailableError``, ``HubSpotAccessError``, ``HubSpotError``) when HubSpot does
        not do it: the redactor then commits nothing and tries the request again. A 404 is a
        contact already gone (deleted by hand, or by this call before a crash): done."""
        if request.topic != "customers/redact" or request.email_pseudonym is None:
            return 0
        ids = IdMap(_ReadOnly(), self._ids_topic)
        await ids.load(self._bootstrap)
        deleted = 0
        for hubspot_id in contact_ids(ids.live(), self._secret, request.email_pseudonym):
            status, _ = await self.client.call("POST", GDPR_DELETE, json={"objectId": hubspot_id})
            deleted += status != 404
        return deleted

    async def close(self) -> None:
        await self.client.close()


def eraser_for(settings: Settings) -> HubSpotEraser | None:
    """The eraser when ``SHOPSYNC_REDACT_HUBSPOT`` is on (it needs ``HUBSPOT_TOKEN``), else None."""
    if not settings.redact_hubspot:
        return None
    token = settings.hubspot_token.get_secret_value()
    if not token:
        raise ValueError("SHOPSYNC_REDACT_HUBSPOT is on: the redactor needs HUBSPOT_TOKEN to delete contacts")
    client = HubSpotClient(settings.hubspot_base_url, token)
    return HubSpotEraser(
        client, settings.kafka_bootstrap_servers, topic_name(settings, "hubspot.ids"), settings.privacy_key()
    )
