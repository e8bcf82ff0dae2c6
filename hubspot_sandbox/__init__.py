"""A local stand-in for the part of HubSpot's CRM API the writer uses: real HTTP, HubSpot's
shapes and semantics, persisted in SQLite, with rate limits, signed deletion webhooks and
injectable faults. It refuses what HubSpot documents as refused; RULES.md lists each rule with its
source, and ``contract`` declares the endpoints and fields it accepts. See ``running_sandbox``
(tests) and ``python -m hubspot_sandbox serve`` (or
``shopsync sandbox serve``).

Where HubSpot's behaviour is unknown or needlessly complex here, the sandbox simplifies, and says so:

- Unique values are compared case-insensitively for every unique property (HubSpot: surely for
  email); emails are stored trimmed and lower-cased. Search EQ is case-insensitive too.
- A whole batch fails with 400 for invalid properties, pipeline/stage or product ids, a bad
  ``idProperty`` or duplicates within the batch, and with 409 "Existing ID: N" for a unique clash;
  only missing records fail input by input (207), and the inputs the ``batch_error_rate`` fault
  picks (also on ``batch/archive``, which HubSpot documents as 204 only). Archiving a missing id
  answers 204, as HubSpot does.
- Modified dates move only when a value changes, so a replayed upsert leaves a record untouched.
- A stage given without a pipeline goes to the "default" pipeline; stages are checked by id only.
- Search results appear immediately (HubSpot's search index lags), with no full-text ``query``;
  ``after`` is an offset. Its limit of 5 requests a second is one window for the whole sandbox.
  ``EQ``/``IN`` on a unique property read its index; other filters test each record of the type.
- Rate-limit counters live in memory (a restart starts a fresh day); refused requests don't count.
- GDPR delete sends ``contact.deletion`` (HubSpot uses a separate ``contact.privacyDeletion``);
  webhook deliveries still pending when the sandbox stops are lost (HubSpot retries for hours).
- Pipelines are deals-only, without update or delete. Each object starts with one property group
  (its information group); HubSpot's accounts have a few more.
- Association batches are capped at 100 inputs, like object batches.
- ``/account-info/v3/details`` answers a fixed standard account (USD, ``na1``) in ``time_zone``;
  no other account-info endpoint exists.
"""

from hubspot_sandbox.config import SandboxConfig
from hubspot_sandbox.server import Sandbox, running_sandbox, serve
from hubspot_sandbox.webhooks import sign, verify

__all__ = ["Sandbox", "SandboxConfig", "running_sandbox", "serve", "sign", "verify"]
