"""Posted forms, as the console, the resident pages and the providers' webhooks read them."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDict, MultiDictProxy


async def posted_form(request: web.Request):
    """The posted form; an empty one when its bytes are not text in the charset it
    names, or it names one nobody knows (no browser or provider sends either), so the
    caller's CSRF, nonce or signature check refuses it."""
    try:
        return await request.post()
    except (UnicodeDecodeError, ValueError, LookupError):
        return MultiDictProxy(MultiDict())
