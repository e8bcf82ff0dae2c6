"""Sealing at the edges (SPEC G1, crypto-shredding, step 3 of the README's wiring): the shell that
seals a delivery's personal values under its customer's key before the bridge or an importer
appends it, and the readers' side, a key ring caught up on a batch's key refs.

The pure parts are ``schemas.sealing`` (which fields, the envelope, opening) and
``streams.shredding`` (whose key: ``body_key_id``); the keys are ``handlers.keyring.KeyRing``'s,
on the key topic. A subject's key is made and acknowledged by Kafka (acks=all) inside
``KeyRing.key_for``, before this returns the sealed body: no record is ever appended sealed under
a key the key topic does not hold.

Used only while ``SHOPSYNC_SEAL_PERSONAL_DATA`` is on (:func:`sealer_for` and :func:`opener_for`
return None otherwise, and the callers then do what they always did).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping

from config import Settings
from handlers.keyring import KeyRing
from schemas.envelope import Delivery
from schemas.sealing import NONCE_BYTES, personal_part, refs_in, seal, seal_whole, spec_for
from streams.shredding import body_key_id, key_encryption_key
from streams.topics import key_topic

log = logging.getLogger("shopsync.sealer")


def _ring(settings: Settings, request_timeout_s: float = 40.0) -> KeyRing:
    kek = key_encryption_key(settings.privacy_key())
    return KeyRing(settings.kafka_bootstrap_servers, key_topic(settings), kek, request_timeout_s)


def _failed(future: asyncio.Future[None]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


class Sealer:
    """Seals deliveries for one writer process (the bridge, an import run). Its ring starts on the
    first seal (Kafka may be down when the bridge starts: that delivery then fails, and Shopify
    retries) and, with ``follow``, keeps reading the key topic, so a key shredded elsewhere is
    never sealed with again (``KeyRing.key_for`` then makes a new one)."""

    def __init__(self, settings: Settings, follow: bool = False, request_timeout_s: float = 40.0) -> None:
        self.settings = settings
        self.secret = settings.privacy_key()
        self._request_timeout_s = request_timeout_s
        self.ring = _ring(settings, request_timeout_s)
        self._follow = follow
        self._started = False
        self._follower: asyncio.Future[None] | None = None
        self._loading: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Load the ring (the key topic to its end) once. The loading is a task of its own that a
        caller's timeout never cancels: the bridge waits for a delivery's seal within its append
        budget, and a key topic that takes longer to read than that (a million keys) was thrown
        away and read from the start by every delivery, each answered 503 (found in review).
        Now the first deliveries get 503 while it loads, and the ones after it find it loaded."""
        if self._started:
            return
        await asyncio.shield(self._ensure_loading())

    def readiness(self) -> bool:
        """Whether the keys are loaded (the bridge's /readyz); starts loading them if not."""
        if not self._started:
            self._ensure_loading()
        return self._started

    def _ensure_loading(self) -> asyncio.Future[None]:
        """The one loading of the ring, started if none is under way or the last one failed
        (synchronous, so two callers in one loop can never start two)."""
        if self._loading is None or _failed(self._loading):
            self._loading = asyncio.ensure_future(self._load())
        return self._loading

    async def _load(self) -> None:
        try:
            await self.ring.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.ring.stop()
            self.ring = _ring(self.settings, self._request_timeout_s)  # a fresh one for the next try
            raise
        self._started = True
        if self._follow:
            self._follower = asyncio.ensure_future(self._follow_keys())

    async def _follow_keys(self) -> None:
        """Follow the key topic for as long as the process runs: a failed read is logged (no
        personal data: the error's type) and the ring read again to its end, never given up on,
        or the bridge would seal with keys shredded since (found in review)."""
        while True:
            try:
                await self.ring.follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "the key ring stopped following the key topic (%s); catching up", type(exc).__name__
                )
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    await self.ring.catch_up()

    async def stop(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
            with contextlib.suppress(BaseException):
                await self._loading
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(BaseException):
                await self._follower
        if self._started:
            await self.ring.stop()
        self._started = False

    def _subject(self, delivery: Delivery) -> tuple[str, str] | None:
        """(shop, key id) whose key seals the delivery, or None when it holds nothing personal."""
        spec = spec_for(delivery.topic)
        if spec is None or not personal_part(delivery.body, spec):
            return None
        shop = delivery.shop_domain.strip().lower()
        return shop, body_key_id(self.secret, shop, delivery.topic, delivery.body)

    async def prepare(self, deliveries: Iterable[Delivery]) -> None:
        """Make (and have Kafka acknowledge) the key of every subject these deliveries name that
        the ring does not hold, concurrently: an import page's new customers cost one round of
        appends, not one each. Then :meth:`seal_held` seals them without I/O."""
        subjects = {s for s in map(self._subject, deliveries) if s is not None}
        if not subjects:
            return
        await self.start()
        missing = [s for s in subjects if self.ring.held_key(*s) is None]
        await asyncio.gather(*(self.ring.key_for(shop, kid) for shop, kid in missing))

    def seal_held(self, delivery: Delivery) -> Delivery:
        """:meth:`seal` for a delivery whose subject's key was made by :meth:`prepare`; raises
        ``KeyError`` when it was not (never appends a record under a key not yet acknowledged)."""
        subject = self._subject(delivery)
        if subject is None:
            return delivery
        held = self.ring.held_key(*subject)
        if held is None:
            raise KeyError("the subject's key was not prepared")
        spec = spec_for(delivery.topic)
        assert spec is not None, "a delivery with a subject has a spec"
        body = seal(delivery.body, spec, held[0], held[1], os.urandom(NONCE_BYTES))
        return delivery.model_copy(update={"body": body})

    async def seal(self, delivery: Delivery) -> Delivery:
        """The delivery with its body's personal values sealed (the delivery itself when its kind
        holds none, ``schemas.sealing.SPECS``, or this body has none); a new subject's key is
        appended and acknowledged first."""
        await self.prepare([delivery])
        return self.seal_held(delivery)

    async def seal_parked(self, delivery: Delivery) -> Delivery:
        """A delivery the product does not consume, parked: its whole body sealed, under the
        customer it names if one can be told (else the shop's subject: ``shop/redact`` erases it,
        and parking's 30-day retention drops it anyway)."""
        if not delivery.body:
            return delivery
        await self.start()
        shop = delivery.shop_domain.strip().lower()
        kid = body_key_id(self.secret, shop, delivery.topic, delivery.body)
        ref, data_key = await self.ring.key_for(shop, kid)
        body = seal_whole(delivery.body, ref, data_key, os.urandom(NONCE_BYTES))
        return delivery.model_copy(update={"body": body})


def sealer_for(settings: Settings, follow: bool = False, request_timeout_s: float = 40.0) -> Sealer | None:
    """A sealer when ``SHOPSYNC_SEAL_PERSONAL_DATA`` is on, else None (nothing is sealed).
    ``request_timeout_s``: how long a key's append may wait for Kafka (aiokafka's 40 s by
    default; the bridge gives its append budget, as its appender's producer has)."""
    return Sealer(settings, follow, request_timeout_s) if settings.seal_personal_data else None


REFRESH_S = 1.0
"""How often at most a reader reads the key topic to its end before a batch, even when it holds
every key the batch names (an end-offsets request when nothing changed)."""


class Opener:
    """A reader's keys (the worker, replay, the compliance report): a ring read to the end at
    start, and caught up before a batch whose records name a ref it does not hold. The batch is
    then parsed inside ``schemas.sealing.opening(opener.keys)``."""

    def __init__(self, settings: Settings, refresh_s: float = REFRESH_S) -> None:
        self.ring = _ring(settings)
        self._started = False
        self._starting = asyncio.Lock()
        self._refresh_s = refresh_s
        self._caught_up_at = 0.0

    @property
    def keys(self) -> Mapping[str, bytes]:
        return self.ring.keys

    async def ensure(self, raws: Iterable[bytes]) -> None:
        """Every key ref these records' bytes name is held, or known to be gone (shredded)."""
        refs: set[str] = set()
        for raw in raws:
            refs |= refs_in(raw)
        async with self._starting:  # one catch-up at a time: the worker's agents share the ring
            if not self._started:
                await self.ring.start()
                self._started = True
            now = time.monotonic()
            if now - self._caught_up_at >= self._refresh_s:
                # follow the key topic: a key shredded since (a redact) is dropped here too, so
                # a running worker stops opening that customer's records within REFRESH_S
                await self.ring.catch_up()
                self._caught_up_at = now
            elif refs:
                await self.ring.ensure(refs)

    async def ensure_refs(self, refs: Iterable[str]) -> None:
        """Every one of these refs is held, or known to be gone: the key topic read to its end now
        when one is not held (``schemas.sealing.KeySource.ensure_refs``), whenever it was last."""
        async with self._starting:
            if not self._started:
                await self.ring.start()
                self._started = True
            await self.ring.ensure(refs)

    async def key_for(self, shop: str, kid: str) -> tuple[str, bytes]:
        """A live key of the subject, made (acks=all) if the ring holds none: the worker seals what
        it derives for a whole shop (a company's rows) under the shop's own subject."""
        async with self._starting:
            if not self._started:
                await self.ring.start()
                self._started = True
        return await self.ring.key_for(shop, kid)

    async def stop(self) -> None:
        if self._started:
            await self.ring.stop()
        self._started = False


def opener_for(settings: Settings, refresh_s: float = REFRESH_S) -> Opener | None:
    """An opener when ``SHOPSYNC_SEAL_PERSONAL_DATA`` is on, else None. ``refresh_s`` 0 reads the
    key topic to its end before every batch (the writer: the last gate before HubSpot)."""
    return Opener(settings, refresh_s) if settings.seal_personal_data else None
