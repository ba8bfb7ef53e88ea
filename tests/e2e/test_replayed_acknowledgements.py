"""A genuine acknowledgement sent twice, or carried to another alert, moves
nothing the second time (the delivery's history notes that it came; state,
confirmation and the alert's counts of deliveries stay; the per-channel tally of
provider events counts it, as it counts every event that arrives): a resident's
tap, a print house's answer file.
(Twilio's: tests/e2e/test_provider_callbacks.py, a repeated receipt confirms once,
a late one for an old step moves nothing, an unsigned or tampered one is a 403.)"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from gateway.api.http import STATE
from tests.e2e import test_app_push_delivery as push
from tests.e2e import test_paper_mail_delivery as mail

pytestmark = pytest.mark.e2e


async def until(check, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.2)


async def test_a_tap_acknowledged_twice_or_carried_to_another_alert_changes_nothing(city):
    contact = push.fcm("t1")
    await city.add(push.resident("t1", contact, push.phone("+821055520001")),
                   {"fcm_tokens": [contact["token"]], "phones": ["+821055520001"], "push": {"ack": False}})
    aid = await city.post_alert(push.alert("t1"))
    other = await city.post_alert(push.alert("t1"))
    await until(lambda: _pushed(city, aid))
    vault = city.app[STATE]["engine"].registry.vault
    ack = f"{city.api}/hooks/push/ack"

    async with city.http.post(ack, json={"token": f"{aid}.{vault.link_token(aid, 't1')}"}) as r:
        assert r.status == 204
    confirmed = await city.path(aid, "t1")
    assert confirmed["confirmed_by"] == {"channel": "push", "level": "acknowledged"}
    counts = outcome(await city.get(f"/v1/alerts/{aid}"))
    async with city.http.post(ack, json={"token": f"{aid}.{vault.link_token(aid, 't1')}"}) as r:
        assert r.status == 204  # the app may retry; it is told all is well
    assert moved(confirmed, await city.path(aid, "t1")) == {}
    assert outcome(await city.get(f"/v1/alerts/{aid}")) == counts

    # The token is bound to its alert: under another alert's id it opens nothing.
    async with city.http.post(ack, json={"token": f"{other}.{vault.link_token(aid, 't1')}"}) as r:
        assert r.status == 404
    assert (await city.path(other, "t1")).get("confirmed_by") is None


def outcome(summary: dict) -> tuple:
    """An alert's deliveries by state, and who confirmed them by which channel."""
    return summary["deliveries"], {ch: c.get("confirmed_by") for ch, c in summary["channels"].items()}


def moved(before: dict, after: dict) -> dict:
    """What differs between two views of a delivery, beyond the history of what arrived."""
    return {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
            if k != "attempts" and before.get(k) != after.get(k)}


async def _pushed(city, aid) -> bool:
    async with city.http.get(f"{city.api}/v1/alerts/{aid}/deliveries/t1", headers=city.auth) as r:
        path = await r.json() if r.status == 200 else {"attempts": []}
    return any(s["status"] == "sent" for a in path["attempts"] for s in a["statuses"])


async def test_a_print_house_answer_file_dropped_again_changes_nothing(city):
    # The stack, and so its archive of answers, is shared with the session's other mail tests.
    archive = Path(city.stack.settings.data_dir) / "mail" / "answers"
    earlier = set(archive.glob("*.response.csv"))
    await city.add(mail.resident("m1", mail.HOME), {"postal": ["|".join(mail.HOME)],
                                                    "mail": {"outcome": "posted", "after_s": 10}})
    aid = await city.post_alert(mail.alert("m1"))
    await city.settled(aid, timeout=40)
    posted = await city.path(aid, "m1")
    assert posted["confirmed_by"] == {"channel": "mail", "level": "posted"}
    counts = outcome(await city.get(f"/v1/alerts/{aid}"))
    [answer] = set(archive.glob("*.response.csv")) - earlier
    outbox = Path(city.stack.settings.printhouse) / "outbox"
    shutil.copy(answer, outbox / answer.name)
    await until(lambda: _taken(outbox / answer.name))
    assert moved(posted, await city.path(aid, "m1")) == {}
    assert outcome(await city.get(f"/v1/alerts/{aid}")) == counts


async def _taken(path: Path) -> bool:
    return not path.exists()
