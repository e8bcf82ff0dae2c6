"""HubSpot commands: what the processors decide HubSpot must hold, and the writer carries out.

Every command names its record by a natural key (an email, a Shopify id), never by a HubSpot id:
the processors do not know HubSpot ids, and a command must mean the same thing when it is replayed
against an account that was rebuilt. Every command is idempotent: an upsert sets properties to
values, an archive archives, an association is created or removed; applying one twice changes
nothing the second time. Commands on ``hubspot.commands`` are keyed by :func:`command_key`, so all
commands for one record share a partition and the writer can coalesce them.
"""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from config.rules import LegalBasis

ObjectType = Literal["contacts", "deals", "products", "line_items", "orders", "carts", "companies"]

DEFAULT_ASSOCIATION = 0
"""An association type id meaning "HubSpot's own unlabelled type for this pair of object types":
the writer looks the id up with the associations v4 labels endpoint at set-up (orders and carts,
X1), instead of the rules hard-coding ids they cannot confirm. Deals keep their documented ids."""

PropertyValue = str | None
"""HubSpot takes every property value as a string; ``None`` clears the property."""


class RecordRef(BaseModel):
    """A HubSpot record named by a unique property: ``email`` for contacts, a custom
    ``hasUniqueValue`` property (a Shopify id) for the others.

    G1 (``SHOPSYNC_REDACTABLE``): a contact's ``id_value`` is then its email's pseudonym, so no
    key (the command's Kafka key, the id map's key) holds the address, and ``address`` carries the
    email itself as a value: what HubSpot is asked by (it upserts and reads contacts by email).
    Without the setting ``address`` is absent, and left out of the encoded command, so the
    command stream is byte for byte what it was."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    object_type: ObjectType
    id_property: str
    id_value: str
    address: str | None = Field(None, exclude_if=lambda value: value is None)

    @property
    def key(self) -> str:
        """The natural key: object type, unique property and ``id_value`` (never ``address``)."""
        return f"{self.object_type}:{self.id_property}:{self.id_value}"

    @property
    def by_pseudonym_only(self) -> bool:
        """A contact named by its email's pseudonym without the address (G1: a B2B company's link
        to a member, sealed under the shop's key, must not hold the member's email). HubSpot cannot
        be asked by it: only the writer's id map, which the contact's own upsert fills, knows its
        id. (An email always holds '@'; a pseudonym never does. A contact named by another
        property, ``firstname`` say, is not one.)"""
        return (
            self.object_type == "contacts"
            and self.id_property == "email"
            and self.address is None
            and "@" not in self.id_value
        )

    @property
    def hubspot_value(self) -> str:
        """The unique property's value as HubSpot holds it: the email when ``id_value`` is its
        pseudonym, else ``id_value``."""
        return self.address if self.address is not None else self.id_value


class Upsert(BaseModel):
    """Create the record, or update it if one with this unique value exists."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["upsert"] = "upsert"
    record: RecordRef
    properties: dict[str, PropertyValue]
    create_if_missing: bool = Field(
        True,
        description="False for updates that must never create the record (for example a "
        "trigger property on a contact that may have been deleted in HubSpot, C4).",
    )


class Archive(BaseModel):
    """Archive the record (HubSpot keeps it restorable for 90 days)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["archive"] = "archive"
    record: RecordRef


class _Link(BaseModel):
    """An association between two records, of a HubSpot-defined type (deal to contact: 3, ...)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    record: RecordRef
    to: RecordRef
    association_type_id: int


class Associate(_Link):
    """Associate two records, once both exist in HubSpot."""

    op: Literal["associate"] = "associate"


class Dissociate(_Link):
    """Remove an association between two records."""

    op: Literal["dissociate"] = "dissociate"


SubscriptionState = Literal["SUBSCRIBED", "UNSUBSCRIBED"]


class SetSubscription(BaseModel):
    """X4, only where a setting asks for it: set the contact's email address's status for one
    HubSpot subscription type (``subscription``: its id, or its name as the account lists it).
    The writer never sends ``SUBSCRIBED`` for an address HubSpot holds as unsubscribed (from that
    type, or from all email): nothing resubscribes a contact who opted out in HubSpot."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["subscription"] = "subscription"
    record: RecordRef
    subscription: str
    state: SubscriptionState
    legal_basis: LegalBasis | None = None
    legal_basis_explanation: str | None = None


Command = Annotated[Upsert | Archive | Associate | Dissociate | SetSubscription, Field(discriminator="op")]
AnyCommand = Upsert | Archive | Associate | Dissociate | SetSubscription
_COMMAND: TypeAdapter[AnyCommand] = TypeAdapter(Command)


def command_key(command: AnyCommand) -> str:
    """The Kafka key of a command: the record it is about (object type and natural key)."""
    return command.record.key


def encode_command(command: AnyCommand) -> bytes:
    return orjson.dumps(command.model_dump(mode="json"))


def decode_command(raw: bytes) -> AnyCommand:
    return _COMMAND.validate_json(raw)
