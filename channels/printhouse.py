"""The print house: letters go out in batches to its drop box, answers come back as files.

The protocol is a folder one, as many print-and-post houses run it over SFTP:

- we drop `inbox/<batch>/` with `manifest.csv`
  (`letter_id,resident_ref,postcode,address_line1,pages,pdf_file,sha256`),
  the PDFs, and last an empty `READY`;
- it answers `outbox/<batch>.response.csv` (`letter_id,status,at`, status
  `posted` or `returned`), or refuses a bad batch whole with
  `outbox/<batch>.rejected.csv` (`letter_id,pdf_file,reason`).

The drop box is a local folder (`GATEWAY_PRINTHOUSE=/srv/printhouse`, also
a mounted share) or SFTP (`sftp://user@host[:port]/path`, with asyncssh,
key `GATEWAY_PRINTHOUSE_SSH_KEY`, host keys `GATEWAY_PRINTHOUSE_KNOWN_HOSTS`).

Letters wait in a tray on disk (`<data dir>/mail/`) between the worker that
renders them and the batcher in the API process; the tray must be on storage
both see.  Every file is written aside and renamed, so no reader sees half.
Every file in the tray is sealed with the contact-data key (gateway/crypto.py,
bound to the file's name): PDFs and letter descriptions name and address the
resident.  They are opened only as a batch is handed over, straight into the
drop box, which gets them in clear as a print house needs them.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import hashlib
import io
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Protocol
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import orjson
from cryptography.exceptions import InvalidTag

log = logging.getLogger("channels.printhouse")

NAME = "printhouse"
MANIFEST_COLUMNS = ["letter_id", "resident_ref", "postcode", "address_line1", "pages", "pdf_file", "sha256"]
RESPONSE_SUFFIX, REJECTED_SUFFIX = ".response.csv", ".rejected.csv"
SEALED = ".sealed"
# Left in a batch folder of ours once the print house has it.
HANDED_OVER = "HANDED_OVER"


@dataclass(frozen=True)
class PendingLetter:
    letter_id: str
    # Which send it is: alert/resident/step/attempt/leg (Message.ref).
    ref: str
    resident_ref: str
    postcode: str
    address_line1: str
    pages: int
    sha256: str
    urgent: bool
    queued_at: float

    @property
    def pdf_file(self) -> str:
        return f"{self.letter_id}.pdf"

    @property
    def files(self) -> tuple[str, str]:
        """Its two files in the tray: the description first, the PDF second."""
        return f"{self.letter_id}.json{SEALED}", f"{self.pdf_file}{SEALED}"


@dataclass(frozen=True)
class Answer:
    """One line of the print house's answer about one letter."""

    letter_id: str
    status: str  # posted | returned | rejected
    at_ms: int | None = None
    reason: str = ""


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(partial, path)


class Tray:
    """Letters rendered and waiting for a batch, and batches not yet handed over."""

    def __init__(self, root: Path, vault):
        self.pending = Path(root) / "pending"
        self.batches = Path(root) / "batches"
        self.vault = vault

    def _ready(self) -> None:
        for folder in (self.pending, self.batches):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _seal(self, path: Path, data: bytes) -> None:
        _write(path, self.vault.seal_bytes(data, bound_to=f"mail tray:{path.name}"))

    def open(self, path: Path) -> bytes:
        """A tray file in clear. Bound to its name, so no file can stand in for another."""
        return self.vault.open_bytes(path.read_bytes(), bound_to=f"mail tray:{path.name}")

    def put(self, letter: PendingLetter, pdf: bytes) -> None:
        """The PDF first, then its description: a letter without one is not there yet."""
        self._ready()
        meta, pdf_file = letter.files
        self._seal(self.pending / pdf_file, pdf)
        self._seal(self.pending / meta, orjson.dumps(asdict(letter)))

    def _seal_unsealed(self, folder: Path) -> None:
        """Letters an older gateway left in clear (`<id>.json`, `<id>.pdf`, a
        batch's `manifest.csv`) are sealed where they lie, PDF first."""
        for meta in folder.glob("*.json"):
            if meta.name.startswith("."):
                continue
            try:
                letter = PendingLetter(**orjson.loads(meta.read_bytes()))
                self._seal(folder / letter.files[1], (folder / letter.pdf_file).read_bytes())
                self._seal(folder / letter.files[0], meta.read_bytes())
            except (OSError, orjson.JSONDecodeError, TypeError):
                continue  # being sealed or taken by another process right now
            (folder / letter.pdf_file).unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
        (folder / "manifest.csv").unlink(missing_ok=True)  # made again at hand-over

    def _letters(self, folder: Path) -> list[PendingLetter]:
        self._seal_unsealed(folder)
        out = []
        for meta in folder.glob(f"*.json{SEALED}"):
            if meta.name.startswith("."):
                continue
            try:
                out.append(PendingLetter(**orjson.loads(self.open(meta))))
            except (OSError, orjson.JSONDecodeError, TypeError):
                continue  # taken by another batcher a moment ago
            except InvalidTag:
                log.error("%s is sealed with a key no longer configured (GATEWAY_CONTACT_KEYS_OLD)", meta)
        return out

    def waiting(self) -> list[PendingLetter]:
        if not self.pending.is_dir():
            return []
        return sorted(self._letters(self.pending), key=lambda letter: letter.queued_at)

    def drop(self, letter: PendingLetter) -> None:
        for name in letter.files:
            (self.pending / name).unlink(missing_ok=True)

    def take(self, letters: list[PendingLetter]) -> tuple[str, Path, list[PendingLetter]]:
        """Move letters into a new batch folder; returns the letters it got."""
        self._ready()
        now = datetime.datetime.now(datetime.timezone.utc)
        batch_id = f"B{now:%Y%m%dT%H%M%S}Z-{secrets.token_hex(8)}"  # echoed in the answer: unguessable
        folder = self.batches / f".{batch_id}.partial"
        folder.mkdir(mode=0o700)
        taken = []
        for letter in letters:
            meta, pdf_file = letter.files
            try:  # a rename is the claim: two batchers never take one letter
                os.rename(self.pending / meta, folder / meta)
            except FileNotFoundError:
                continue
            os.rename(self.pending / pdf_file, folder / pdf_file)
            taken.append(letter)
        os.rename(folder, self.batches / batch_id)
        return batch_id, self.batches / batch_id, taken

    def unfinished(self) -> list[tuple[str, Path, list[PendingLetter]]]:
        """Batches made but not yet known to be handed over (a crash, an unreachable drop box)."""
        if not self.batches.is_dir():
            return []
        out = []
        for folder in sorted(self.batches.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            out.append((folder.name, folder, sorted(self._letters(folder), key=lambda letter: letter.letter_id)))
        return out

    def reseal(self) -> int:
        """Seal every waiting letter again with the current key; returns how many files
        needed it.  Only while holding the batcher's lock: nobody moves them meanwhile."""
        resealed = 0
        for folder in (self.pending, *(self.batches.iterdir() if self.batches.is_dir() else ())):
            for path in folder.glob(f"*{SEALED}") if folder.is_dir() else ():
                if not path.name.startswith(".") and not self.vault.is_current(path.read_bytes()):
                    self._seal(path, self.open(path))
                    resealed += 1
        return resealed

    def batch_files(self, folder: Path, letters: list[PendingLetter]) -> Iterator[tuple[str, bytes]]:
        """What goes to the print house, opened one file at a time: the manifest, then the PDFs."""
        yield "manifest.csv", manifest(letters)
        for letter in letters:
            yield letter.pdf_file, self.open(folder / letter.files[1])


def manifest(letters: list[PendingLetter]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(MANIFEST_COLUMNS)
    for x in letters:
        writer.writerow([x.letter_id, x.resident_ref, x.postcode, x.address_line1, x.pages, x.pdf_file, x.sha256])
    return out.getvalue().encode("utf-8")


def last_cutoff(now: float, cutoff: str, tz: str) -> float:
    """The most recent daily cut-off (HH:MM local time) at or before `now`."""
    zone = ZoneInfo(tz)
    local = datetime.datetime.fromtimestamp(now, zone)
    hour, minute = (int(x) for x in cutoff.split(":"))
    today = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return (today if today <= local else today - datetime.timedelta(days=1)).timestamp()


def batch_due(letters: list[PendingLetter], now: float, *, urgent_every_s: float, cutoff: str, tz: str) -> bool:
    """Close a batch when an urgent letter has waited long enough for company,
    or when a letter has been waiting since before the daily cut-off."""
    if not letters:
        return False
    if any(x.urgent and now - x.queued_at >= urgent_every_s for x in letters):
        return True
    return min(x.queued_at for x in letters) < last_cutoff(now, cutoff, tz)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_answer(name: str, content: bytes) -> list[Answer]:
    """The rows of a `.response.csv` or `.rejected.csv`, as answers per letter.
    A rejection without a letter id (a fault of the whole batch) has letter_id ""."""
    rows = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
    out = []
    for row in rows:
        if name.endswith(REJECTED_SUFFIX):
            out.append(Answer(row.get("letter_id") or "", "rejected", reason=(row.get("reason") or "")[:200]))
        elif row.get("status") in ("posted", "returned") and row.get("letter_id"):
            out.append(Answer(row["letter_id"], row["status"], _ms(row.get("at") or "")))
    return out


def batch_of(answer_name: str) -> str:
    for suffix in (RESPONSE_SUFFIX, REJECTED_SUFFIX):
        if answer_name.endswith(suffix):
            return answer_name[: -len(suffix)]
    return answer_name


def _ms(at: str) -> int | None:
    try:
        stamp = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    # Never in the future: a clock ahead at the print house must not stretch our deadlines.
    return min(int(stamp.timestamp() * 1000), int(time.time() * 1000))


def is_answer(name: str) -> bool:
    return not name.startswith(".") and name.endswith((RESPONSE_SUFFIX, REJECTED_SUFFIX))


class DropBox(Protocol):
    async def hand_over(self, batch_id: str, files: Iterator[tuple[str, bytes]]) -> None:
        """Write each (name, content) into the batch's folder, then `READY`."""
    async def answers(self) -> list[str]: ...
    async def fetch(self, name: str) -> bytes: ...
    async def remove(self, name: str) -> None: ...
    async def close(self) -> None: ...


class FolderDropBox:
    """A drop box on this machine (or a mounted share)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.inbox, self.outbox = self.root / "inbox", self.root / "outbox"

    async def hand_over(self, batch_id: str, files: Iterator[tuple[str, bytes]]) -> None:
        await asyncio.to_thread(self._copy, batch_id, files)

    def _copy(self, batch_id: str, files: Iterator[tuple[str, bytes]]) -> None:
        target = self.inbox / batch_id
        target.mkdir(parents=True, exist_ok=True)
        for name, content in files:
            (target / name).write_bytes(content)
        (target / "READY").touch()

    async def answers(self) -> list[str]:
        if not self.outbox.is_dir():
            return []
        return sorted(p.name for p in self.outbox.iterdir() if is_answer(p.name))

    async def fetch(self, name: str) -> bytes:
        return await asyncio.to_thread((self.outbox / name).read_bytes)

    async def remove(self, name: str) -> None:
        (self.outbox / name).unlink(missing_ok=True)

    async def close(self) -> None:
        return None


class SftpDropBox:
    """A drop box on the print house's SFTP server; one connection, opened when needed."""

    def __init__(self, url: str, key_file: str = "", known_hosts: str = ""):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "", parts.port or 22
        self.username = unquote(parts.username or "") or None
        self.root = unquote(parts.path) or "."
        self.key_file, self.known_hosts = key_file, known_hosts
        self._conn = None
        self._sftp = None

    async def _client(self):
        import asyncssh

        if self._sftp is None:
            options = {"username": self.username, "port": self.port}
            if self.key_file:
                options["client_keys"] = [self.key_file]
            if self.known_hosts:
                options["known_hosts"] = self.known_hosts
            self._conn = await asyncssh.connect(self.host, **options)
            self._sftp = await self._conn.start_sftp_client()
        return self._sftp

    async def _run(self, work):
        import asyncssh

        try:
            return await work(await self._client())
        except (OSError, asyncssh.Error):
            await self.close()  # reconnect on the next call
            raise

    async def hand_over(self, batch_id: str, files: Iterator[tuple[str, bytes]]) -> None:
        target = f"{self.root}/inbox/{batch_id}"

        async def go(sftp):
            await sftp.makedirs(target, exist_ok=True)
            # Opened (read and decrypted) one at a time, off the event loop.
            while (file := await asyncio.to_thread(next, files, None)) is not None:
                name, content = file
                async with sftp.open(f"{target}/{name}", "wb") as f:
                    await f.write(content)
            async with sftp.open(f"{target}/READY", "wb"):
                pass

        await self._run(go)

    async def answers(self) -> list[str]:
        async def go(sftp):
            if not await sftp.isdir(f"{self.root}/outbox"):
                return []
            return sorted(n for n in await sftp.listdir(f"{self.root}/outbox") if is_answer(n))

        return await self._run(go)

    async def fetch(self, name: str) -> bytes:
        async def go(sftp):
            async with sftp.open(f"{self.root}/outbox/{name}", "rb") as f:
                return await f.read()

        return await self._run(go)

    async def remove(self, name: str) -> None:
        await self._run(lambda sftp: sftp.remove(f"{self.root}/outbox/{name}"))

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._sftp = None


def open_drop_box(settings) -> DropBox:
    where = settings.printhouse
    if where.startswith("sftp://"):
        return SftpDropBox(where, settings.printhouse_ssh_key, settings.printhouse_known_hosts)
    return FolderDropBox(Path(where.removeprefix("file://")))
