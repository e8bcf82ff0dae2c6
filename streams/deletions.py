"""HubSpot contact deletions resolved to an email inside the stream, never by calling HubSpot (C4, R5).

HubSpot's ``contact.deletion`` webhook names the contact by its HubSpot id only. The bridge used to
ask HubSpot for the email while answering the webhook, so with HubSpot's API down it appended
deletions without one and they were dead-lettered: HubSpot does not retry a webhook it got a 200
for, so C4 was lost. Now the bridge appends the event as it came, and the worker joins it with the
writer's id map (topic ``hubspot.ids``: ``contacts:email:<email>`` -> HubSpot id), which already
holds every contact the product wrote:

- both inputs are re-keyed by HubSpot object id onto one internal topic, so a contact's id
  mapping and its deletions meet in one partition and one state, whatever order they arrive in;
- a deletion whose mapping is known goes on to the contacts stage with the email filled in; one
  that came first waits in the state until the mapping arrives (the writer records an id right
  after HubSpot answered its upsert, and a deletion can race that record);
- a deletion of a contact the product never wrote never resolves: it waits, harmlessly (it is a
  few bytes, and nothing of ours is to be kept from that contact).

G1 (``SHOPSYNC_REDACTABLE``): the id map's contact keys are ``contacts:email:<pseudonym>``, so
the "email" the join carries (``ContactIdMapping.email``, ``HubSpotObjectState.email``, a released
deletion's ``email``) is the contact key, the pseudonym, and never the address: the contacts
stage is keyed by it, which is all the join is for.

Pure functions over a small frozen state, like the other rules; the faust shell only moves data.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from schemas.envelope import HubSpotContactDeletion
from streams.rules.contact_keys import is_pseudonym
from streams.rules.keys import normalize_email

CONTACT_ID_PREFIX = "contacts:email:"
"""The id map's key for a contact (``RecordRef.key`` of ``contact_ref(email)``)."""
GONE_PREFIX = "gone:"
"""The id map's value prefix of a contact HubSpot no longer holds (``handlers.id_map``)."""


class ContactIdMapping(BaseModel):
    """The writer recorded a contact's HubSpot id: the join's other side."""

    model_config = ConfigDict(frozen=True)

    kind: str = "contact-id"
    object_id: int
    email: str


class HubSpotObjectState(BaseModel):
    """What the worker knows of one HubSpot contact id: its email, and deletions waiting for it."""

    model_config = ConfigDict(frozen=True)

    email: str | None = None
    pending: tuple[HubSpotContactDeletion, ...] = ()


def contact_id_mapping(key: bytes | None, value: bytes | None) -> ContactIdMapping | None:
    """The contact id mapping an id-map record holds, if it is one: ``<id>``, or ``gone:<id>``
    (the writer found HubSpot no longer holds the contact and keeps its id, so that the deletion
    still resolves after the topic is compacted, C4). A tombstone is not: the product archived
    the record itself, and a later deletion webhook for it changes nothing."""
    if key is None or value is None:
        return None
    text = key.decode("utf-8", "replace")
    if not text.startswith(CONTACT_ID_PREFIX):
        return None
    named = text[len(CONTACT_ID_PREFIX) :]
    email = named if is_pseudonym(named) else normalize_email(named)  # G1: a pseudonym is the key
    raw = value.decode("utf-8", "replace")
    try:
        object_id = int(raw.removeprefix(GONE_PREFIX))
    except ValueError:
        return None
    return ContactIdMapping(object_id=object_id, email=email) if email else None


def on_mapping(
    state: HubSpotObjectState, mapping: ContactIdMapping
) -> tuple[HubSpotObjectState, list[HubSpotContactDeletion]]:
    """Remember the email; release the deletions that were waiting for it."""
    released = [d.model_copy(update={"email": mapping.email}) for d in state.pending]
    return HubSpotObjectState(email=mapping.email), released


def on_deletion(
    state: HubSpotObjectState, deletion: HubSpotContactDeletion
) -> tuple[HubSpotObjectState, list[HubSpotContactDeletion]]:
    """Resolve the deletion now if the email is known, else keep it (once per event id)."""
    if state.email is not None:
        return state, [deletion.model_copy(update={"email": state.email})]
    if any(p.event_id == deletion.event_id for p in state.pending):
        return state, []
    return state.model_copy(update={"pending": (*state.pending, deletion)}), []
