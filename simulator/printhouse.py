"""A print-and-post house that works from folders, as many real ones do (SFTP drop boxes).

The gateway drops a batch into `<root>/inbox/<batch_id>/`: `manifest.csv`
(`letter_id,resident_ref,postcode,address_line1,pages,pdf_file,sha256`), the
PDFs, and last an empty `READY` file. The print house checks the batch as a
whole: every listed PDF present and matching its sha256, and no PDF left
unlisted. A bad batch is refused outright (nothing is printed) with
`<root>/outbox/<batch_id>.rejected.csv` (`letter_id,pdf_file,reason`). A good
one is printed and, once the slowest letter is out (`mail.after_s`, scaled),
answered with `<root>/outbox/<batch_id>.response.csv` (`letter_id,status,at`,
status `posted` or `returned`). Either way the batch then moves to
`<root>/done/`. Answers appear whole: they are written aside and renamed.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from simulator.faults import Faults
    from simulator.records import Records

MANIFEST_COLUMNS = ["letter_id", "resident_ref", "postcode", "address_line1", "pages", "pdf_file", "sha256"]
REJECTED_COLUMNS = ["letter_id", "pdf_file", "reason"]
RESPONSE_COLUMNS = ["letter_id", "status", "at"]
PROVIDER = "printhouse"


@dataclass(frozen=True)
class Letter:
    letter_id: str
    resident_ref: str
    postcode: str
    address_line1: str
    pages: int
    pdf_file: str
    sha256: str


def check(batch: Path) -> tuple[list[Letter], list[tuple[str, str, str]]]:
    """The batch's letters, and (letter_id, pdf_file, reason) for everything wrong with it."""
    manifest = batch / "manifest.csv"
    if not manifest.is_file():
        return [], [("", "manifest.csv", "manifest.csv is missing")]
    letters: list[Letter] = []
    problems: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    with manifest.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != MANIFEST_COLUMNS:
            return [], [("", "manifest.csv", f"columns must be {','.join(MANIFEST_COLUMNS)}")]
        for row in reader:
            reason = _problem(batch, row, seen)
            seen.add(row["letter_id"] or "")
            if reason:
                problems.append((row["letter_id"] or "", row["pdf_file"] or "", reason))
            else:
                letters.append(Letter(**{**row, "pages": int(row["pages"]), "sha256": row["sha256"].lower()}))
    listed = {row[1] for row in problems} | {letter.pdf_file for letter in letters}
    problems += [("", pdf.name, "PDF not listed in the manifest")
                 for pdf in sorted(batch.iterdir()) if pdf.suffix.lower() == ".pdf" and pdf.name not in listed]
    if not letters and not problems:
        problems.append(("", "manifest.csv", "the manifest lists no letters"))
    return letters, problems


def _problem(batch: Path, row: dict[str, Any], seen: set[str]) -> str | None:
    name = row["pdf_file"] or ""
    if None in row:
        return "the row has more fields than the header"
    if not row["letter_id"] or row["letter_id"] in seen:
        return "letter_id is empty or repeated"
    if not row["postcode"] or not row["address_line1"]:
        return "postcode and address_line1 are required"
    if not (row["pages"] or "").isdigit() or int(row["pages"]) < 1:
        return "pages must be a positive integer"
    # A plain file name only: the manifest must not reach outside its batch.
    if not name or Path(name).name != name or name.startswith("."):
        return "pdf_file must be a file name inside the batch"
    path = batch / name
    if not path.is_file():
        return "PDF is missing"
    content = path.read_bytes()
    if not content.startswith(b"%PDF-"):
        return "file is not a PDF"
    if hashlib.sha256(content).hexdigest() != (row["sha256"] or "").lower():
        return "sha256 does not match the PDF"
    return None


class PrintHouse:
    def __init__(
        self,
        root: Path,
        behaviour_lookup: Callable[[str, str], dict[str, Any]],
        time_scale: float,
        records: "Records",
        *,
        faults: "Faults | None" = None,
        poll_s: float = 0.5,
    ):
        self.root = Path(root)
        self.inbox, self.outbox, self.done = self.root / "inbox", self.root / "outbox", self.root / "done"
        self.lookup = behaviour_lookup
        self.time_scale = time_scale
        self.records = records
        self.faults = faults
        self.poll_s = poll_s
        self._busy: dict[str, asyncio.Task] = {}

    async def run(self) -> None:
        """Poll the inbox for READY batches until cancelled; batches are worked on side by side."""
        for folder in (self.inbox, self.outbox, self.done):
            folder.mkdir(parents=True, exist_ok=True)
        try:
            while True:
                fault = self.faults.get(PROVIDER) if self.faults else None
                self._lock_inbox(bool(fault and fault.unwritable))
                # During an outage (or while nothing can be written) the drop box is not collected.
                if not (fault and (fault.outage or fault.unwritable)):
                    for batch in sorted(self.inbox.iterdir()):
                        if batch.name not in self._busy and (batch / "READY").is_file():
                            task = asyncio.create_task(self._work(batch))
                            self._busy[batch.name] = task
                            task.add_done_callback(lambda _, name=batch.name: self._busy.pop(name, None))
                await asyncio.sleep(self.poll_s)
        finally:
            for task in list(self._busy.values()):
                task.cancel()

    def _lock_inbox(self, locked: bool) -> None:
        """An unwritable drop box: a plain file stands where the inbox was, so the
        gateway's writes fail even for root (who ignores permissions); the inbox
        and anything in it wait aside until the fault ends."""
        aside = self.root / ".inbox-unwritable"
        if locked and not aside.exists():
            self.inbox.rename(aside)
            self.inbox.write_bytes(b"")
        elif not locked and aside.exists():
            self.inbox.unlink(missing_ok=True)
            aside.rename(self.inbox)

    async def _work(self, batch: Path) -> None:
        letters, problems = await asyncio.to_thread(check, batch)
        if problems:
            _write_csv(self.outbox / f"{batch.name}.rejected.csv", REJECTED_COLUMNS, problems)
        else:
            await self._post(batch.name, letters)
        _archive(batch, self.done)

    async def _post(self, batch_id: str, letters: list[Letter]) -> None:
        start = time.time()
        fate = []
        fail_rate = self.faults.get(PROVIDER).fail_rate if self.faults else 0.0
        for letter in letters:
            record = self.lookup(letter.postcode, letter.address_line1)
            mail = record["mail"]
            returned = mail["outcome"] == "returned" or bool(self.faults and self.faults.chance(fail_rate))
            fate.append((letter, record, "returned" if returned else "posted", mail["after_s"] * self.time_scale))
        await asyncio.sleep(max((delay for *_, delay in fate), default=0))
        rows = []
        for letter, record, status, delay in fate:
            at = datetime.fromtimestamp(start + delay, timezone.utc).isoformat(timespec="seconds")
            rows.append((letter.letter_id, status, at.replace("+00:00", "Z")))
            entry = self.records.add(
                record["resident"] or letter.resident_ref, "mail", PROVIDER, letter.letter_id,
                to=f"{letter.postcode}|{letter.address_line1}", text=letter.sha256, status=status,
                batch=batch_id, pages=letter.pages,
            )
            if status == "posted":
                self.records.receive(entry)
        _write_csv(self.outbox / f"{batch_id}.response.csv", RESPONSE_COLUMNS, rows)


def _write_csv(path: Path, columns: list[str], rows: list[tuple]) -> None:
    # Written aside and renamed, so the gateway never reads half a file.
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    os.replace(partial, path)


def _archive(batch: Path, done: Path) -> None:
    target, n = done / batch.name, 1
    while target.exists():  # the same batch id sent twice keeps both copies
        target, n = done / f"{batch.name}.{n}", n + 1
    shutil.move(str(batch), str(target))
