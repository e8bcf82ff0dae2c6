"""Field problems (SPEC R1): a field of a Shopify record that did not fit its type.

Such a field is synced as absent and the rest of the record syncs; the problem is reported so an
operator can see it. A problem names where (Shopify topic, record key, field path) and why, never
the value: values hold personal data (emails, names, addresses) and must not reach logs or topics
meant for operators.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class IdentityError(ValueError):
    """A body whose identity cannot be read (SPEC R1): no field that names the record fits, so no
    rule can tell which contact, deal or product it is about, and it is dead-lettered whole.

    The message names the topic, the identity fields and the problems found on them (paths and
    reasons, never values); ``problems`` holds every field problem found before giving up.
    """

    def __init__(self, message: str, problems: tuple[FieldProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class FieldProblem(BaseModel):
    """One field that did not fit: its path in the body (``line_items[0].price``) and why."""

    model_config = ConfigDict(frozen=True)

    path: str
    reason: str


class FieldProblemRecord(BaseModel):
    """What the worker appends to ``shopify.field-problems`` for each problem of a delivery."""

    model_config = ConfigDict(frozen=True)

    kind: str = "field-problem"
    shopify_topic: str
    record_key: str
    event_id: str
    path: str
    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
