"""The pages a resident opens from a message: `/m/<alert>.<token>` shows the alert
in their language with an "I got this" button; `/r/<alert>.<token>` lets them
set languages, channel preferences, needs, quiet hours and consent.

The token is the resident id sealed with AES-SIV and bound to the alert
(`Vault.link_token`): it opens one resident's message and settings, nothing
else, and Redis keeps nothing for it.  Forms
carry a nonce signed with a server key, so a page cannot be posted from
elsewhere; opening a page writes nothing.  Pages work without JavaScript and
stay far under 30 KB for 2G/3G handsets.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from functools import lru_cache, wraps

import orjson
from aiohttp import web
from redis.exceptions import WatchError

from channels.base import ProviderEvent
from channels.notices import notices

from . import deliveries, keys
from .alerts import drill_of
from .api.http import STATE
from .api.routing import Route
from .config import TEMPLATES_DIR
from .console.html import HTML_PAGE, form_body, render
from .fallback import DEFAULT_ORDER, pick_language
from .forms import posted_form
from .schemas import NEEDS
from .transitions import text

NONCE_TTL_S = 2 * 86400
TEXT_DIR = TEMPLATES_DIR / "web" / "resident" / "text"
# Names of languages in themselves, for the switchers; other tags show as they are.
ENDONYMS = {"ko": "한국어", "en": "English", "zh": "中文", "ja": "日本語", "vi": "Tiếng Việt", "ru": "Русский",
            "th": "ไทย", "tl": "Tagalog", "mn": "Монгол", "uz": "Oʻzbek", "ne": "नेपाली", "km": "ខ្មែរ",
            "id": "Bahasa Indonesia", "fr": "Français", "es": "Español", "de": "Deutsch"}
# Languages a resident can choose on the settings page (the ones the pages speak, then others).
OFFERED = ("ko", "en", "zh", "ja", "vi", "ru", "th", "tl", "mn", "uz", "ne", "km", "id")
TIME = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


@lru_cache(maxsize=None)
def words(lang: str) -> dict:
    """The page's own words in `lang` (base language), English when not translated."""
    path = TEXT_DIR / f"{lang.split('-')[0].lower()}.json"
    return orjson.loads(path.read_bytes() if path.exists() else (TEXT_DIR / "en.json").read_bytes())


def endonym(tag: str) -> str:
    return ENDONYMS.get(tag, ENDONYMS.get(tag.split("-")[0].lower(), tag))


def _nonce_key(request: web.Request) -> bytes:
    return hmac.new(request.app[STATE]["settings"].lookup_key, b"resident-page-nonce", hashlib.sha256).digest()


def make_nonce(request: web.Request, aid: str, token: str, now: int | None = None) -> str:
    issued = int(now or time.time())
    mac = hmac.new(_nonce_key(request), f"{aid}.{token}.{issued}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{issued}.{mac}"


def nonce_ok(request: web.Request, aid: str, token: str, nonce: str) -> bool:
    issued, _, _ = nonce.partition(".")
    if not issued.isdigit() or not 0 <= time.time() - int(issued) <= NONCE_TTL_S:
        return False
    return hmac.compare_digest(make_nonce(request, aid, token, int(issued)), nonce)


def resident_page(handler):
    """A page behind a resident's link: the handler gets (alert id, token,
    resident id, alert doc) for a token of that alert; any other gets the
    page that says the link is not known."""
    @wraps(handler)
    async def with_resident(request: web.Request) -> web.Response:
        aid, token = request.match_info["aid"], request.match_info["token"]
        redis = request.app[STATE]["redis"]
        rid = request.app[STATE]["channel_context"].registry.vault.resident_of(aid, token)
        # A sealed token is genuine; the delivery must also exist (a resident of this alert).
        if rid is None or not await redis.exists(keys.delivery(aid, rid)):
            return _missing(request)
        doc = await redis.hget(keys.alert(aid), "doc")
        if doc is None:
            return _missing(request)
        return await handler(request, aid, token, rid, orjson.loads(doc))
    return with_resident


def _missing(request: web.Request) -> web.Response:
    lang = request.query.get("lang", "ko")
    lang = lang if lang in ENDONYMS else "ko"
    return render("resident/missing.html", status=404, lang=lang, t=words(lang))


async def _profile(redis, rid: str) -> dict:
    p = await redis.hget(keys.resident(rid), "p")
    return orjson.loads(p) if p else {"l": [], "n": []}


def _language(request: web.Request, carried: list[str], resident_languages: list[str]) -> str:
    asked = request.query.get("lang") or ""
    return asked if asked in carried else pick_language(resident_languages, carried)


# The message --------------------------------------------------------------

@resident_page
async def message_page(request: web.Request, aid: str, token: str, rid: str, doc: dict) -> web.Response:
    redis = request.app[STATE]["redis"]
    carried = list(doc["content"])
    lang = _language(request, carried, (await _profile(redis, rid))["l"])
    return await _render_message(request, aid, token, rid, doc, lang, form_expired=False)


async def _render_message(request, aid, token, rid, doc, lang, *, form_expired: bool) -> web.Response:
    redis = request.app[STATE]["redis"]
    status = text(await redis.hget(keys.alert(aid), "status") or b"")
    history = await deliveries.history(redis, aid, rid)
    acknowledged = any(line.split("|")[4] == "acknowledged" for line in history)
    options = [(o["code"], o["label"].get(lang) or next(iter(o["label"].values())))
               for o in doc.get("response_options", [])]
    readers = (await _profile(redis, rid))["l"]
    return render("resident/message.html", status=403 if form_expired else 200, lang=lang, t=words(lang),
                  aid=aid, token=token, content=doc["content"][lang], severity=doc["severity"],
                  notices=notices(lang, drill_of(doc), readers),
                  choices=[(c, endonym(c)) for c in doc["content"]], options=options,
                  acknowledged=acknowledged, ended=status in ("cancelled", "expired"), form_expired=form_expired,
                  nonce=make_nonce(request, aid, token))


@resident_page
async def acknowledge(request: web.Request, aid: str, token: str, rid: str, doc: dict) -> web.Response:
    """The button: recorded as `acknowledged` on the delivery's current step, like an SMS reply "1",
    and reported the way every channel reports (`ChannelContext.report`)."""
    form = await posted_form(request)
    lang = form.get("lang") if form.get("lang") in doc["content"] else next(iter(doc["content"]))
    if not nonce_ok(request, aid, token, str(form.get("nonce", ""))):
        return await _render_message(request, aid, token, rid, doc, lang, form_expired=True)
    state = request.app[STATE]
    k, n = await state["redis"].hmget(keys.delivery(aid, rid), "k", "n")
    if k is not None:
        answer = str(form.get("answer", "1"))
        codes = {o["code"] for o in doc.get("response_options", [])}
        await state["channel_context"].report(ProviderEvent(
            aid, rid, int(k), int(n), "acknowledged", "web", ref="page", channel="web",
            error_code=answer if answer in codes else ""))
    raise web.HTTPSeeOther(f"/m/{aid}.{token}?lang={lang}")


# Settings -----------------------------------------------------------------

def _prefs(profile: dict) -> dict:
    qh = profile.get("qh") or {}
    return {"languages": profile.get("l", []), "channels": profile.get("co", []), "needs": profile.get("n", []),
            "quiet_start": qh.get("start", ""), "quiet_end": qh.get("end", ""),
            "non_emergency": profile.get("ne", True)}


@resident_page
async def preferences_page(request: web.Request, aid: str, token: str, rid: str, doc: dict) -> web.Response:
    profile = await _profile(request.app[STATE]["redis"], rid)
    lang = _language(request, list(doc["content"]), profile["l"])
    return _render_preferences(request, aid, token, doc, lang, _prefs(profile),
                               saved=request.query.get("saved") == "1", errors=[])


def _render_preferences(request, aid, token, doc, lang, prefs, *, saved: bool, errors: list[str],
                        status: int = 200) -> web.Response:
    offered = list(dict.fromkeys([*OFFERED, *prefs["languages"]]))
    return render("resident/preferences.html", status=status, lang=lang, t=words(lang), aid=aid, token=token,
                  choices=[(c, endonym(c)) for c in doc["content"]], all_languages=[(c, endonym(c)) for c in offered],
                  channel_choices=DEFAULT_ORDER, need_choices=NEEDS, prefs=prefs, saved=saved, errors=errors,
                  nonce=make_nonce(request, aid, token))


def read_preferences(form, known_languages: set[str], current: list[str]) -> tuple[dict, list[str]]:
    """The settings form as profile fields, and its problems (as keys into the page's words)."""
    languages = [v for v in dict.fromkeys(str(form.get(f, "")) for f in ("lang1", "lang2", "lang3"))
                 if v in known_languages] or current
    channels = [v for v in dict.fromkeys(str(form.get(f, "")) for f in ("channel1", "channel2"))
                if v in DEFAULT_ORDER]
    needs = [v for v in NEEDS if v in form.getall("needs", [])]
    start, end = str(form.get("quiet_start", "")).strip(), str(form.get("quiet_end", "")).strip()
    errors = []
    quiet = None
    if start or end:
        if TIME.match(start) and TIME.match(end):
            quiet = {"start": start, "end": end}
        else:
            errors.append("bad_time")
    fields = {"l": languages, "co": channels, "n": needs, "qh": quiet, "ne": form.get("non_emergency") == "1"}
    return fields, errors


async def save_preferences(redis, rid: str, fields: dict) -> bool:
    """Merge the resident's own choices into their profile; contact points are untouched.

    Optimistic: retried if the profile changes between read and write.
    """
    key = keys.resident(rid)
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(key)
                raw = await pipe.hget(key, "p")
                if raw is None:
                    return False
                profile = orjson.loads(raw)
                tz = (profile.get("qh") or {}).get("tz")
                profile.update({k: v for k, v in fields.items() if k != "qh"})
                if fields["qh"]:
                    profile["qh"] = {**fields["qh"], **({"tz": tz} if tz else {})}
                else:
                    profile.pop("qh", None)
                pipe.multi()
                pipe.hset(key, "p", orjson.dumps(profile))
                await pipe.execute()
                return True
            except WatchError:
                continue


@resident_page
async def save_preferences_form(request: web.Request, aid: str, token: str, rid: str, doc: dict) -> web.Response:
    redis = request.app[STATE]["redis"]
    form = await posted_form(request)
    lang = form.get("lang") if form.get("lang") in doc["content"] else next(iter(doc["content"]))
    t = words(lang)
    current = _prefs(await _profile(redis, rid))
    if not nonce_ok(request, aid, token, str(form.get("nonce", ""))):
        return _render_preferences(request, aid, token, doc, lang, current, saved=False,
                                   errors=[t["expired_form"]], status=403)
    fields, errors = read_preferences(form, set(OFFERED) | set(current["languages"]), current["languages"])
    if errors:
        shown = {**current, "languages": fields["l"], "channels": fields["co"],
                 "needs": fields["n"], "non_emergency": fields["ne"]}
        return _render_preferences(request, aid, token, doc, lang, shown, saved=False,
                                   errors=[t[e] for e in errors], status=422)
    if not await save_preferences(redis, rid, fields):
        return _missing(request)
    raise web.HTTPSeeOther(f"/r/{aid}.{token}?lang={lang}&saved=1")


TAG = "resident pages"
LANG = {"lang": ("A language the alert carries", {"type": "string"})}
ROUTES = [
    Route("GET", "/m/{aid}.{token}", message_page, "The alert, in the resident's language, with \"I got this\"",
          tag=TAG, query=LANG, responses={200: HTML_PAGE, 404: "No such link"}),
    Route("POST", "/m/{aid}.{token}", acknowledge, "\"I got this\" (or a response option): acknowledged",
          tag=TAG, body=form_body({"nonce": "The page's nonce", "lang": "Language shown",
                                   "answer": "1, or a response option code"}, ("nonce",)),
          responses={303: "Back to the page, which thanks", 403: "Nonce wrong or too old", 404: "No such link"}),
    Route("GET", "/r/{aid}.{token}", preferences_page, "The resident's settings", tag=TAG,
          query={**LANG, "saved": ("1 after saving", {"enum": ["1"]})},
          responses={200: HTML_PAGE, 404: "No such link"}),
    Route("POST", "/r/{aid}.{token}", save_preferences_form, "Save languages, channels, needs, quiet hours, consent",
          tag=TAG, body=form_body({"nonce": "The page's nonce", "lang": "Language shown", "lang1": "First language",
                                   "lang2": "Second language", "lang3": "Third language",
                                   "channel1": "Channel to try first", "channel2": "Channel to try next",
                                   "needs": "A need; repeat for more", "quiet_start": "HH:MM",
                                   "quiet_end": "HH:MM", "non_emergency": "1 to get non-emergency alerts"},
                                  ("nonce",)),
          responses={303: "Saved", 403: "Nonce wrong or too old", 404: "No such link", 422: "Quiet hours incomplete"}),
]
