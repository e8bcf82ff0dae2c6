"""G1 redact, wiring step 2: the key a contact is routed, stored and named under.

Without ``SHOPSYNC_REDACTABLE`` it is the normalised email, as it always was. With it, it is the
email's pseudonym (``streams.privacy.pseudonym``, the one the compliance topic uses: ``p1:`` and
a keyed HMAC of the normalised address), so no Kafka key, table key, natural key or id map key
holds the address: once step 3 seals the values, a key is the one place a redact could not reach
(a compacted topic keeps its keys in the clear, and a key cannot be sealed without losing the
partitioning and the joins it serves). The same address in any spelling gives the same key (it is
normalised first), so dedupe by email still holds, and two addresses never share one (HMAC-SHA256).
The rules are handed the pseudonym key in ``RuleConfig``; they never read the environment.
"""

from __future__ import annotations

from config.rules import RuleConfig
from schemas.commands import RecordRef
from streams.privacy import PSEUDONYM_PREFIX, pseudonym
from streams.rules.keys import contact_ref, normalize_email


def contact_key(email: str, config: RuleConfig) -> str:
    """The contact key of a (normalised) email: the email itself, or its pseudonym (G1)."""
    secret = config.contact_pseudonym_key
    if secret is None:
        return email
    key = pseudonym(secret.get_secret_value(), "email", email)
    if key is None:  # pragma: no cover - callers pass normalised emails, which always hold '@'
        raise ValueError("a contact key needs an email address")
    return key


def email_contact_key(email: str | None, config: RuleConfig) -> str | None:
    """The contact key of an email as a record spells it (normalised first); None without one (C2)."""
    normal = normalize_email(email)
    return None if normal is None else contact_key(normal, config)


def contact_record(email: str, config: RuleConfig) -> RecordRef:
    """The contact's ref in commands: named by its key, carrying the address when the key is a
    pseudonym (what the writer asks HubSpot by)."""
    return contact_ref(email, contact_key(email, config))


def is_pseudonym(key: str) -> bool:
    """Whether a contact key is a pseudonym (an email always holds '@'; a pseudonym never does)."""
    return key.startswith(PSEUDONYM_PREFIX) and "@" not in key


def contact_link_ref(key: str) -> RecordRef:
    """The contact of a contact key, as a record that is not the contact's own names it (a B2B
    company's links, G1): by the email itself, or by its pseudonym alone. A pseudonym's ref carries
    no address, because the command naming it is sealed under another subject's key (the shop's)
    than the contact's, which a ``customers/redact`` shreds; the writer finds the contact's HubSpot
    id in its id map, put there by the contact's own upsert (``handlers.writer_runner``)."""
    if is_pseudonym(key):
        return RecordRef(object_type="contacts", id_property="email", id_value=key)
    return contact_ref(key)
