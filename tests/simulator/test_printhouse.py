"""The print house: batches of letters in, posted or returned (or refused) out."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import random
import time
from pathlib import Path

import pytest

from simulator import SimConfig, simulator_of, start
from simulator.behaviour import Behaviour
from simulator.faults import Faults
from simulator.printhouse import MANIFEST_COLUMNS, PrintHouse
from simulator.records import Records

HOME = ("03151", "세종대로 209, 101동 1203호")
MOVED_AWAY = ("06236", "테헤란로 152")


@pytest.fixture
def residents() -> Behaviour:
    return Behaviour([
        {"resident": "r000001", "postal": ["|".join(HOME)], "mail": {"outcome": "posted", "after_s": 3600}},
        {"resident": "r000002", "postal": ["|".join(MOVED_AWAY)], "mail": {"outcome": "returned", "after_s": 1800}},
    ])


@pytest.fixture
async def house(tmp_path, residents):
    records = Records()
    printhouse = PrintHouse(tmp_path, residents.by_postal, 0.0001, records, poll_s=0.01)
    task = asyncio.create_task(printhouse.run())
    yield printhouse, records
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _pdf(letter_id: str) -> bytes:
    return b"%PDF-1.7\n% letter " + letter_id.encode() + b"\n%%EOF\n"


def drop(root: Path, batch_id: str, letters: dict[str, tuple[str, str]], *, tamper: str | None = None,
         missing: str | None = None, unlisted: str | None = None, ready: bool = True) -> Path:
    """Write a batch the way the gateway does; the keyword arguments spoil it on purpose."""
    batch = root / "inbox" / batch_id
    batch.mkdir(parents=True)
    rows = []
    for letter_id, (postcode, line1) in letters.items():
        content = _pdf(letter_id)
        rows.append([letter_id, f"res-{letter_id}", postcode, line1, 1, f"{letter_id}.pdf",
                     hashlib.sha256(content).hexdigest()])
        if letter_id != missing:
            (batch / f"{letter_id}.pdf").write_bytes(content + (b"tampered" if letter_id == tamper else b""))
    if unlisted:
        (batch / unlisted).write_bytes(_pdf("stray"))
    with (batch / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([MANIFEST_COLUMNS, *rows])
    if ready:
        (batch / "READY").touch()
    return batch


async def _answer(path: Path, timeout: float = 5.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path.name}"
        await asyncio.sleep(0.01)
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


async def test_a_good_batch_is_posted_and_filed_away(tmp_path, house):
    _, records = house
    drop(tmp_path, "b1", {"L1": HOME})
    [row] = await _answer(tmp_path / "outbox" / "b1.response.csv")
    assert row["letter_id"] == "L1" and row["status"] == "posted" and row["at"].endswith("Z")
    assert (tmp_path / "done" / "b1" / "L1.pdf").exists() and not (tmp_path / "inbox" / "b1").exists()
    [entry] = records.for_resident("r000001")
    assert entry["channel"] == "mail" and entry["status"] == "posted" and entry["received_at"]


async def test_a_letter_to_someone_who_moved_away_comes_back(tmp_path, house):
    _, records = house
    drop(tmp_path, "b2", {"L1": HOME, "L2": MOVED_AWAY})
    rows = await _answer(tmp_path / "outbox" / "b2.response.csv")
    assert {r["letter_id"]: r["status"] for r in rows} == {"L1": "posted", "L2": "returned"}
    assert records.for_resident("r000002")[0]["status"] == "returned"


async def test_a_tampered_pdf_stops_the_whole_batch(tmp_path, house):
    drop(tmp_path, "b3", {"L1": HOME, "L2": MOVED_AWAY}, tamper="L2")
    [row] = await _answer(tmp_path / "outbox" / "b3.rejected.csv")
    assert row == {"letter_id": "L2", "pdf_file": "L2.pdf", "reason": "sha256 does not match the PDF"}
    assert not (tmp_path / "outbox" / "b3.response.csv").exists() and (tmp_path / "done" / "b3").exists()


async def test_a_missing_pdf_stops_the_whole_batch(tmp_path, house):
    _, records = house
    drop(tmp_path, "b4", {"L1": HOME, "L2": MOVED_AWAY}, missing="L1")
    [row] = await _answer(tmp_path / "outbox" / "b4.rejected.csv")
    assert (row["letter_id"], row["reason"]) == ("L1", "PDF is missing")
    assert len(records) == 0


async def test_a_pdf_the_manifest_does_not_list_stops_the_batch(tmp_path, house):
    drop(tmp_path, "b5", {"L1": HOME}, unlisted="extra.pdf")
    [row] = await _answer(tmp_path / "outbox" / "b5.rejected.csv")
    assert (row["pdf_file"], row["reason"]) == ("extra.pdf", "PDF not listed in the manifest")


async def test_a_batch_waits_until_it_is_marked_ready(tmp_path, house):
    batch = drop(tmp_path, "b6", {"L1": HOME}, ready=False)
    await asyncio.sleep(0.1)
    assert batch.exists() and not list((tmp_path / "outbox").iterdir())
    (batch / "READY").touch()
    await _answer(tmp_path / "outbox" / "b6.response.csv")


async def test_an_unwritable_drop_box_refuses_files_until_the_fault_ends(tmp_path, residents):
    faults = Faults(random.Random(1), {"printhouse": {"unwritable": True}})
    house = PrintHouse(tmp_path, residents.by_postal, 0.0001, Records(), faults=faults, poll_s=0.01)
    task = asyncio.create_task(house.run())
    try:
        await asyncio.sleep(0.05)
        with pytest.raises(OSError):  # even root cannot write under it
            drop(tmp_path, "b9", {"L9": HOME})
        faults.set({})
        await asyncio.sleep(0.05)
        drop(tmp_path, "b9", {"L9": HOME})
        [row] = await _answer(tmp_path / "outbox" / "b9.response.csv")
        assert row["status"] == "posted"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_print_house_still_posts_letters_after_the_simulator_is_reset(tmp_path, residents):
    config = SimConfig(port=0, account_sid="AC" + "0" * 32, auth_token="t" * 32, gateway_url="http://127.0.0.1:9",
                       time_scale=0.0001, seed=7, printhouse_dir=str(tmp_path))
    runner, _ = await start(config)
    try:
        sim = simulator_of(runner)
        sim.behaviour.add_many([{"resident": "r000001", "postal": ["|".join(HOME)],
                                 "mail": {"outcome": "posted", "after_s": 3600}}])
        await sim.reset()
        drop(tmp_path, "b1", {"L1": HOME})
        [row] = await _answer(tmp_path / "outbox" / "b1.response.csv", timeout=10)
        assert row["status"] == "posted"
    finally:
        await runner.cleanup()
