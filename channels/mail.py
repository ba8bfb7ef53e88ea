"""Paper mail: the last resort, for residents no phone reaches.

Confirmed means: `posted`, the print house saying it handed the letter to
the postal service.  That is as far as paper can prove; it is final for the
mail step whatever level the alert asked for.  A letter the post brings back
(`returned`) fails the step for good and marks the address stale, so the
operators are told whose address to fix.

A send renders the letter to PDF (`channels.letters`) into the tray and is
`queued`.  The batcher runs in the API process (`run`): it closes a batch
when an urgent letter has waited `GATEWAY_MAIL_URGENT_EVERY_S` for company,
and at the daily cut-off `GATEWAY_MAIL_CUTOFF` for the rest; hands it to the
print house (`sent`); and reads the print house's answers every
`GATEWAY_MAIL_POLL_S`.  A batch the print house refuses fails each of its
letters temporarily, so they are rendered and sent again within the budget.
Letters no longer needed (the resident confirmed meanwhile, the alert was
cancelled) are taken out before a batch closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import shutil
import time
from pathlib import Path

import orjson

from gateway import keys
from gateway.crypto import Vault
from gateway.transitions import TERMINAL, release

from . import letters
from .base import Channel, Message, Outcome, ProviderEvent
from .printhouse import (
    HANDED_OVER,
    NAME,
    REJECTED_SUFFIX,
    DropBox,
    PendingLetter,
    Tray,
    batch_due,
    batch_of,
    open_drop_box,
    read_answer,
    sha256,
)

log = logging.getLogger("channels.mail")

URGENT_SEVERITIES = frozenset({"Extreme", "Severe"})
URGENT_URGENCIES = frozenset({"Immediate", "Expected"})
# How long a letter id still maps back to its delivery: past any mail step.
LETTER_TTL_S = 90 * 86400
BATCHER_LEASE_MS = 120_000


class Mail(Channel):
    name = "mail"
    contact_types = frozenset({"postal"})
    # WeasyPrint takes a tenth of a second or more a letter.
    retry_backoff_s = 600.0

    def __init__(self, ctx):
        super().__init__(ctx)
        self.settings = ctx.settings
        self.root = Path(ctx.settings.data_dir) / "mail"
        self.tray = Tray(self.root, Vault.of(ctx.settings))

    def available(self) -> bool:
        return bool(self.settings.printhouse)

    async def send(self, message: Message, recipient) -> Outcome:
        contact = recipient.contact
        letter_id = letter_id_for(message.ref, self.settings.lookup_key)
        try:
            letter = await self._render(message, recipient, letter_id)
        except letters.MissingFont as e:
            # Loud, and tried again after the back-off: installing the font fixes it.
            log.error("letter %s not printed: %s", letter_id, e)
            return Outcome("failed", NAME, error_code="no_font", permanent=False, detail=str(e)[:200])
        pending = PendingLetter(
            letter_id=letter_id, ref=message.ref, resident_ref=recipient.resident_id,
            postcode=contact.get("postcode", ""), address_line1=(contact.get("lines") or [""])[0],
            pages=letter.pages, sha256=sha256(letter.pdf), urgent=is_urgent(message), queued_at=time.time())
        await self.ctx.redis.set(keys.letter(letter_id), message.ref, ex=LETTER_TTL_S)
        await asyncio.to_thread(self.tray.put, pending, letter.pdf)
        return Outcome("queued", NAME, ref=letter_id, detail=f"{letter.layout}, {letter.pages} pages")

    async def preview(self, message: Message, recipient) -> dict:
        """The letter is laid out for real (its pages are what posting costs), then dropped."""
        try:
            letter = await self._render(message, recipient, "PREVIEW")
        except letters.MissingFont as e:
            return {"layout": letters.Layout.for_needs(recipient.needs).name, "language": message.language,
                    "problem": str(e)}
        return {"layout": letter.layout, "pages": letter.pages, "language": message.language,
                "pdf_bytes": len(letter.pdf)}

    async def _render(self, message: Message, recipient, letter_id: str) -> letters.Letter:
        return await asyncio.to_thread(
            letters.render, message, letters.Address.of(recipient.name, recipient.contact),
            letters.Layout.for_needs(recipient.needs), reference=letter_id,
            return_address=self.settings.mail_return_address)

    # The batcher and the answer reader, in the API process ---------------------

    async def run(self, stop: asyncio.Event) -> None:
        box = open_drop_box(self.settings)
        s = self.settings
        tick = max(0.05, min(5.0, s.mail_urgent_every_s / 5, s.mail_poll_s))
        next_read = 0.0
        try:
            while not stop.is_set():
                try:
                    async with self._batcher() as mine:
                        if mine:
                            await self.close_batches(box)
                            if time.monotonic() >= next_read:
                                await self.read_answers(box)
                                next_read = time.monotonic() + s.mail_poll_s
                            await self.ctx.redis.delete(keys.PRINT_HOUSE_DOWN)
                except Exception:  # an unreachable drop box: letters wait, and we try again
                    log.exception("print house round failed")
                    await self._drop_box_down()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), tick)
        finally:
            await box.close()

    async def _drop_box_down(self) -> None:
        """Operators see it (gateway/engine_health.py) while it lasts: since when, kept
        a minute past the last failed round, so a batcher that died does not leave it."""
        with contextlib.suppress(Exception):  # Redis itself may be what failed
            now_ms = int(time.time() * 1000)
            pipe = self.ctx.redis.pipeline(transaction=False)
            pipe.set(keys.PRINT_HOUSE_DOWN, now_ms, nx=True, ex=60)
            pipe.expire(keys.PRINT_HOUSE_DOWN, 60)
            await pipe.execute()

    @contextlib.asynccontextmanager
    async def _batcher(self):
        """One batcher at a time across API processes."""
        token = secrets.token_hex(8)
        mine = await self.ctx.redis.set(keys.MAIL_BATCHER, token, nx=True, px=BATCHER_LEASE_MS)
        try:
            yield bool(mine)
        finally:
            if mine:
                await release(self.ctx.redis, keys.MAIL_BATCHER, token)

    async def reseal_tray(self, wait_s: float = 300.0) -> int:
        """Waiting letters sealed again with the current key (`gateway keys reseal`),
        between two rounds of the batcher; returns the files re-sealed."""
        deadline = time.monotonic() + wait_s
        while True:
            async with self._batcher() as mine:
                if mine:
                    return await asyncio.to_thread(self.tray.reseal)
            if time.monotonic() > deadline:
                raise TimeoutError("the mail batcher kept its lock; run `gateway keys reseal` again")
            await asyncio.sleep(1.0)

    async def close_batches(self, box: DropBox) -> list[str]:
        """Hand over what is due; returns the batch ids handed over."""
        done = []
        for batch_id, folder, batch in self.tray.unfinished():
            await self._hand_over(box, batch_id, folder, batch)
            done.append(batch_id)
        waiting = self.tray.waiting()
        s = self.settings
        if not batch_due(waiting, time.time(), urgent_every_s=s.mail_urgent_every_s, cutoff=s.mail_cutoff,
                         tz=s.mail_tz):
            return done
        wanted = await self._still_wanted(waiting)
        for i in range(0, len(wanted), s.mail_batch_max):
            batch_id, folder, taken = await asyncio.to_thread(self.tray.take, wanted[i:i + s.mail_batch_max])
            if taken:
                await self._hand_over(box, batch_id, folder, taken)
                done.append(batch_id)
            else:
                shutil.rmtree(folder, ignore_errors=True)
        return done

    async def _still_wanted(self, waiting: list[PendingLetter]) -> list[PendingLetter]:
        """Take out letters whose delivery ended or moved on: nobody pays to post them."""
        pipe = self.ctx.redis.pipeline(transaction=False)
        for letter in waiting:
            aid, rid, *_ = letter.ref.split("/")
            pipe.hmget(keys.delivery(aid, rid), "s", "k", "n")
        wanted = []
        for letter, (state, k, n) in zip(waiting, await pipe.execute()):
            _, _, step, attempt, _ = letter.ref.split("/")
            if state is None or state.decode() in TERMINAL or (int(k), int(n)) != (int(step), int(attempt)):
                self.tray.drop(letter)
            else:
                wanted.append(letter)
        return wanted

    async def _hand_over(self, box: DropBox, batch_id: str, folder: Path, batch: list[PendingLetter]) -> None:
        if not (folder / HANDED_OVER).exists():
            ids = [letter.letter_id for letter in batch]
            await self.ctx.redis.set(keys.letter_batch(batch_id), orjson.dumps(ids), ex=LETTER_TTL_S)
            await box.hand_over(batch_id, self.tray.batch_files(folder, batch))
            (folder / HANDED_OVER).touch()
            log.info("batch %s with %d letters handed to the print house", batch_id, len(batch))
        for letter in batch:
            await self._report(letter.ref, "sent", letter.letter_id)
        await asyncio.to_thread(shutil.rmtree, folder, True)

    async def read_answers(self, box: DropBox) -> int:
        """Report what the print house said; returns the number of answer files read."""
        names = await box.answers()
        for name in names:
            content = await box.fetch(name)
            answers = await self._of_the_batch(batch_of(name), read_answer(name, content))
            if name.endswith(REJECTED_SUFFIX):
                await self._refused(batch_of(name), answers)
            else:
                for a in answers:
                    if a.status == "posted":
                        await self._report_letter(a.letter_id, "posted", at_ms=a.at_ms)
                    else:
                        await self._report_letter(a.letter_id, "failed", code="returned", permanent=True,
                                                  dead=True, at_ms=a.at_ms, detail="returned by the post")
            await asyncio.to_thread(self._archive, name, content)
            await box.remove(name)
        return len(names)

    async def _of_the_batch(self, batch_id: str, answers: list) -> list:
        """Only answers about letters of the batch the file names count: its name must
        echo a batch id we handed over (random, unguessable), and the letter ids ours
        in that batch. Anything else (a forged or misfiled file) changes nothing."""
        raw = await self.ctx.redis.get(keys.letter_batch(batch_id))
        ours = set(orjson.loads(raw)) if raw else set()
        kept = [a for a in answers if a.letter_id in ours or (ours and not a.letter_id)]
        if len(kept) < len(answers):
            log.warning("print house answer for batch %s: %d lines about letters not in a batch of ours ignored",
                        batch_id, len(answers) - len(kept))
        return kept

    async def _refused(self, batch_id: str, answers) -> None:
        if not answers:
            return
        raw = await self.ctx.redis.get(keys.letter_batch(batch_id))
        ids = orjson.loads(raw)
        reasons = {a.letter_id: a.reason for a in answers if a.letter_id}
        whole = "; ".join(a.reason for a in answers if not a.letter_id)
        log.warning("print house refused batch %s: %s", batch_id, whole or reasons)
        for letter_id in ids:
            await self._report_letter(letter_id, "failed", code="rejected", permanent=False,
                                      detail=reasons.get(letter_id) or whole or "another letter spoiled the batch")

    async def _report_letter(self, letter_id: str, status: str, **kwargs) -> None:
        ref = await self.ctx.redis.get(keys.letter(letter_id))
        if ref is None:
            log.warning("print house answered about unknown letter %s", letter_id)
            return
        await self._report(ref.decode(), status, letter_id, **kwargs)

    async def _report(self, ref: str, status: str, letter_id: str, *, code: str = "", permanent: bool = True,
                      dead: bool = False, at_ms: int | None = None, detail: str = "") -> None:
        aid, rid, k, n, leg = ref.split("/")
        await self.ctx.report(ProviderEvent(aid, rid, int(k), int(n), status, NAME, ref=letter_id, error_code=code,
                                            permanent=permanent, detail=detail, channel=self.name, leg=int(leg),
                                            contact_dead=dead, at_ms=at_ms))

    def _archive(self, name: str, content: bytes) -> None:
        folder = self.root / "answers"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        (folder / name).write_bytes(content)


def is_urgent(message: Message) -> bool:
    return message.severity in URGENT_SEVERITIES or message.urgency in URGENT_URGENCIES


def letter_id_for(ref: str, key: bytes) -> str:
    """The same send always makes the same letter id, so a send run twice
    (a worker killed mid-render) replaces its letter in the tray, not adds one.
    Keyed, so the id says nothing about whom it is for."""
    return "L" + hashlib.blake2b(ref.encode(), key=key[:64], digest_size=10).hexdigest()
