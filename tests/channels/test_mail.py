"""Paper mail: letters wait in the tray, go out in batches, and the print house's answers come home."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest

from channels.base import ChannelContext, Message, Recipient
from channels.mail import Mail, letter_id_for
from channels.printhouse import (
    FolderDropBox,
    PendingLetter,
    batch_due,
    last_cutoff,
    read_answer,
)
from gateway import keys
from gateway.config import Settings
from simulator.behaviour import Behaviour
from simulator.printhouse import PrintHouse, check
from simulator.records import Records
from tests.letter_fonts import require_letter_fonts

SEOUL = "Asia/Seoul"
HOME = ("03151", "세종대로 209, 101동 1203호")
MOVED_AWAY = ("06236", "테헤란로 152")




class Post:
    """The channel in a stand-in gateway that writes down what it is told."""

    def __init__(self, tmp_path: Path, redis, **settings):
        require_letter_fonts()
        self.events = []
        self.settings = Settings(data_dir=tmp_path / "data", printhouse=str(tmp_path / "printhouse"),
                                 lookup_key=b"k" * 32, mail_urgent_every_s=0, **{"contact_key": b"c" * 32, **settings})

        async def report(event):
            self.events.append(event)
            return "noop"

        self.mail = Mail(ChannelContext(settings=self.settings, report=report, compose=None, redis=redis))
        self.box = FolderDropBox(Path(self.settings.printhouse))
        self.redis = redis

    async def letter(self, rid: str, address: tuple[str, str], *, severity="Severe", urgency="Immediate",
                     needs=frozenset()) -> str:
        message = Message("al_1", rid, 0, 0, "ko", "Heat wave", severity, urgency, headline="폭염 경보",
                          body="오늘 38도까지 오릅니다.", page_url=f"http://gw/m/al_1.tok{rid}")
        await self.redis.hset(keys.delivery("al_1", rid), mapping={"s": "in_progress", "k": 0, "n": 0})
        contact = {"type": "postal", "lines": [address[1], "서울특별시"], "postcode": address[0]}
        out = await self.mail.send(message, Recipient(rid, contact, needs, ("ko",), f"주민 {rid}"))
        assert out.status == "queued"
        return out.ref

    def statuses(self) -> list[tuple[str, str, str]]:
        return [(e.resident_id, e.status, e.error_code) for e in self.events]


def pending(letter_id: str, queued_at: float, urgent: bool) -> PendingLetter:
    return PendingLetter(letter_id, f"al_1/{letter_id}/0/0/0", letter_id, "03151", "종로 1", 1, "0" * 64, urgent,
                         queued_at)


def seoul(*args) -> float:
    return datetime.datetime(*args, tzinfo=ZoneInfo(SEOUL)).timestamp()


# When a batch closes ----------------------------------------------------------

def test_an_urgent_letter_waits_only_the_urgent_window_for_company():
    now = seoul(2025, 7, 1, 10, 0)
    rule = {"urgent_every_s": 300, "cutoff": "16:00", "tz": SEOUL}
    assert not batch_due([pending("a", now - 200, True)], now, **rule)
    assert batch_due([pending("a", now - 301, True), pending("b", now - 1, False)], now, **rule)


def test_routine_letters_wait_for_the_daily_cut_off_in_local_time():
    rule = {"urgent_every_s": 300, "cutoff": "16:00", "tz": SEOUL}
    queued = seoul(2025, 7, 1, 9, 0)
    assert not batch_due([pending("a", queued, False)], seoul(2025, 7, 1, 15, 59), **rule)
    assert batch_due([pending("a", queued, False)], seoul(2025, 7, 1, 16, 0), **rule)
    # Queued after today's cut-off: tomorrow's.
    late = seoul(2025, 7, 1, 16, 30)
    assert not batch_due([pending("a", late, False)], seoul(2025, 7, 2, 15, 0), **rule)
    assert batch_due([pending("a", late, False)], seoul(2025, 7, 2, 16, 1), **rule)
    assert last_cutoff(seoul(2025, 7, 2, 8, 0), "16:00", SEOUL) == seoul(2025, 7, 1, 16, 0)


def test_nothing_waiting_closes_nothing():
    assert not batch_due([], 0.0, urgent_every_s=0, cutoff="16:00", tz=SEOUL)


# Batches as the print house checks them ----------------------------------------

async def test_a_batch_is_what_the_print_house_accepts(tmp_path, redis):
    post = Post(tmp_path, redis)
    for i, rid in enumerate(("r1", "r2", "r3")):
        await post.letter(rid, (f"0315{i}", f"종로 {i}"), needs=frozenset({"large_print"}) if i == 0 else frozenset())
    [batch_id] = await post.mail.close_batches(post.box)
    batch = Path(post.settings.printhouse) / "inbox" / batch_id
    assert (batch / "READY").is_file()
    letters, problems = check(batch)
    assert problems == []
    assert sorted(x.resident_ref for x in letters) == ["r1", "r2", "r3"]
    assert next(x for x in letters if x.resident_ref == "r1").pages >= 2
    # Handed over: every letter is `sent`, and nothing is left in the tray.
    assert sorted(post.statuses()) == [("r1", "sent", ""), ("r2", "sent", ""), ("r3", "sent", "")]
    assert post.mail.tray.waiting() == [] and post.mail.tray.unfinished() == []


async def test_letters_waiting_in_the_tray_show_no_name_address_or_text_on_disk(tmp_path, redis):
    post = Post(tmp_path, redis)
    await post.letter("r1", HOME)
    await post.letter("r2", MOVED_AWAY)
    letters = post.mail.tray.waiting()
    # A crash between batching and handing over leaves a batch on disk too.
    await asyncio.to_thread(post.mail.tray.take, letters[:1])
    files = [p for p in post.mail.root.rglob("*") if p.is_file()]
    assert len(files) == 4 and all(p.name.endswith(".sealed") for p in files)
    secrets = [s.encode() for s in ("주민 r1", "주민 r2", *HOME, *MOVED_AWAY, "서울특별시", "폭염")]
    for path in files:
        raw = path.read_bytes()
        assert not raw.startswith(b"%PDF") and not raw.startswith(b"{")
        assert [s for s in secrets if s in raw] == [], path.name
    # Sealed with the contact key: another key cannot open the tray.
    from channels.printhouse import Tray
    from gateway.crypto import Vault
    assert Tray(post.mail.root, Vault(b"x" * 32, b"k" * 32)).waiting() == []


async def test_letters_an_older_version_left_in_clear_are_sealed_and_still_posted(tmp_path, redis):
    post = Post(tmp_path, redis)
    await post.letter("r1", HOME)
    # What the tray held before it was sealed: the description and the PDF in clear.
    [letter] = post.mail.tray.waiting()
    pdf = post.mail.tray.open(post.mail.tray.pending / letter.files[1])
    post.mail.tray.drop(letter)
    (post.mail.tray.pending / f"{letter.letter_id}.json").write_bytes(orjson.dumps(dataclasses.asdict(letter)))
    (post.mail.tray.pending / letter.pdf_file).write_bytes(pdf)
    assert [x.letter_id for x in post.mail.tray.waiting()] == [letter.letter_id]
    assert sorted(p.name for p in post.mail.tray.pending.iterdir()) == sorted(letter.files)
    [batch_id] = await post.mail.close_batches(post.box)
    letters, problems = check(Path(post.settings.printhouse) / "inbox" / batch_id)
    assert problems == [] and [x.sha256 for x in letters] == [letter.sha256]


async def test_letters_waiting_through_a_key_rotation_go_out_after_the_old_key_is_dropped(tmp_path, redis):
    before = Post(tmp_path, redis, contact_key=b"o" * 32)
    await before.letter("r1", HOME)
    await before.letter("r2", MOVED_AWAY)
    await asyncio.to_thread(before.mail.tray.take, before.mail.tray.waiting()[:1])  # one batch not yet handed over
    rotated = Post(tmp_path, redis, contact_key=b"n" * 32, contact_keys_old=(b"o" * 32,))
    assert await rotated.mail.reseal_tray() == 4
    assert await rotated.mail.reseal_tray() == 0
    after = Post(tmp_path, redis, contact_key=b"n" * 32)
    batches = await after.mail.close_batches(after.box)
    letters = [x for b in batches for x in check(Path(after.settings.printhouse) / "inbox" / b)[0]]
    assert sorted(x.resident_ref for x in letters) == ["r1", "r2"]


async def test_the_same_send_twice_makes_one_letter_not_two(tmp_path, redis):
    post = Post(tmp_path, redis)
    first = await post.letter("r1", HOME)
    second = await post.letter("r1", HOME)
    assert first == second == letter_id_for("al_1/r1/0/0/0", b"k" * 32)
    assert len(post.mail.tray.waiting()) == 1


async def test_a_letter_no_longer_needed_is_taken_out_before_posting(tmp_path, redis):
    post = Post(tmp_path, redis)
    await post.letter("r1", HOME)
    await post.letter("r2", MOVED_AWAY)
    # r1 confirmed by a late SMS reply meanwhile.
    await redis.hset(keys.delivery("al_1", "r1"), "s", "confirmed")
    [batch_id] = await post.mail.close_batches(post.box)
    letters, _ = check(Path(post.settings.printhouse) / "inbox" / batch_id)
    assert [x.resident_ref for x in letters] == ["r2"]
    assert post.mail.tray.waiting() == []


async def test_an_unreachable_drop_box_keeps_the_batch_for_the_next_round(tmp_path, redis):
    post = Post(tmp_path, redis)
    await post.letter("r1", HOME)

    class Down(FolderDropBox):
        async def hand_over(self, batch_id, files):
            raise OSError("connection refused")

    with pytest.raises(OSError):
        await post.mail.close_batches(Down(Path(post.settings.printhouse)))
    assert len(post.mail.tray.unfinished()) == 1 and post.events == []
    [batch_id] = await post.mail.close_batches(post.box)
    assert (Path(post.settings.printhouse) / "inbox" / batch_id / "READY").is_file()
    assert post.statuses() == [("r1", "sent", "")]


# Answers -----------------------------------------------------------------------

async def test_posted_confirms_and_returned_marks_the_address_stale(tmp_path, redis):
    post = Post(tmp_path, redis)
    await post.letter("r1", HOME)
    await post.letter("r2", MOVED_AWAY)
    residents = Behaviour([{"resident": "r1", "postal": ["|".join(HOME)], "mail": {"after_s": 1}},
                           {"resident": "r2", "postal": ["|".join(MOVED_AWAY)],
                            "mail": {"outcome": "returned", "after_s": 1}}])
    house = PrintHouse(Path(post.settings.printhouse), residents.by_postal, 0.01, Records(), poll_s=0.01)
    task = asyncio.create_task(house.run())
    try:
        await post.mail.close_batches(post.box)
        for _ in range(300):
            if await post.box.answers():
                break
            await asyncio.sleep(0.01)
        assert await post.mail.read_answers(post.box) == 1
    finally:
        task.cancel()
    answers = {e.resident_id: e for e in post.events if e.status != "sent"}
    assert answers["r1"].status == "posted" and answers["r1"].channel == "mail" and answers["r1"].at_ms
    returned = answers["r2"]
    assert (returned.status, returned.error_code, returned.permanent, returned.contact_dead) == (
        "failed", "returned", True, True)
    # Read once: the answer is archived and gone from the outbox.
    assert await post.box.answers() == []
    assert (post.mail.root / "answers").is_dir()


async def test_a_refused_batch_fails_each_letter_for_another_try(tmp_path, redis):
    post = Post(tmp_path, redis)
    await post.letter("r1", HOME)
    await post.letter("r2", MOVED_AWAY)
    [batch_id] = await post.mail.close_batches(post.box)
    outbox = Path(post.settings.printhouse) / "outbox"
    outbox.mkdir(parents=True)
    (outbox / f"{batch_id}.rejected.csv").write_text("letter_id,pdf_file,reason\n,manifest.csv,paper jam\n")
    await post.mail.read_answers(post.box)
    refused = [e for e in post.events if e.status == "failed"]
    assert sorted(e.resident_id for e in refused) == ["r1", "r2"]
    assert all(e.error_code == "rejected" and not e.permanent and e.detail == "paper jam" for e in refused)
    assert await redis.get(keys.letter_batch(batch_id))


async def test_answers_about_letters_we_never_sent_change_nothing(tmp_path, redis):
    post = Post(tmp_path, redis)
    outbox = Path(post.settings.printhouse) / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "Bforged.response.csv").write_text("letter_id,status,at\nLdeadbeef,posted,2025-07-01T00:00:00Z\n")
    await post.mail.read_answers(post.box)
    assert post.events == []


async def test_a_forged_answer_file_with_real_letter_ids_but_no_batch_of_ours_changes_nothing(tmp_path, redis):
    """Letter ids are in every manifest; only the batch id the file must echo was never guessable."""
    post = Post(tmp_path, redis)
    letter = await post.letter("r1", HOME)
    outbox = Path(post.settings.printhouse) / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "B20260701T000000Z-000000.response.csv").write_text(f"letter_id,status,at\n{letter},posted,\n")
    (outbox / "Bmadeup.rejected.csv").write_text(f"letter_id,pdf_file,reason\n{letter},x.pdf,forged\n")
    await post.mail.read_answers(post.box)
    assert post.events == []


async def test_an_answer_about_a_letter_of_another_batch_is_ignored_and_the_rest_counts(tmp_path, redis):
    post = Post(tmp_path, redis)
    first = await post.letter("r1", HOME)
    [batch_1] = await post.mail.close_batches(post.box)
    second = await post.letter("r2", MOVED_AWAY)
    [_] = await post.mail.close_batches(post.box)
    post.events.clear()
    outbox = Path(post.settings.printhouse) / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    (outbox / f"{batch_1}.response.csv").write_text(
        f"letter_id,status,at\n{first},posted,\n{second},posted,\n")
    await post.mail.read_answers(post.box)
    assert post.statuses() == [("r1", "posted", "")]


def test_answer_files_are_read_as_the_print_house_writes_them():
    rows = read_answer("B1.response.csv", b"letter_id,status,at\nL1,posted,2025-07-01T01:02:03Z\nL2,returned,\n")
    assert [(a.letter_id, a.status) for a in rows] == [("L1", "posted"), ("L2", "returned")]
    assert rows[0].at_ms == 1751331723000 and rows[1].at_ms is None
    assert read_answer("B1.rejected.csv", b"letter_id,pdf_file,reason\nL1,L1.pdf,sha256 does not match\n")[0] \
        .reason == "sha256 does not match"


async def test_the_batcher_loop_runs_in_the_background_until_stopped(tmp_path, redis):
    post = Post(tmp_path, redis, mail_poll_s=0.05)
    await post.letter("r1", HOME)
    stop = asyncio.Event()
    task = asyncio.create_task(post.mail.run(stop))
    inbox = Path(post.settings.printhouse) / "inbox"
    for _ in range(200):
        if inbox.is_dir() and any(inbox.iterdir()):
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert post.statuses() == [("r1", "sent", "")]
