"""The HTTP session a provider client posts with."""

from __future__ import annotations

import aiohttp


class Session:
    """The process's shared aiohttp session, or one of its own when there is
    none (tests, previews); only its own is closed."""

    def __init__(self, shared: aiohttp.ClientSession | None = None):
        self.shared = shared
        self._own: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        if self.shared is not None and not self.shared.closed:
            return self.shared
        if self._own is None or self._own.closed:
            self._own = aiohttp.ClientSession()
        return self._own

    async def close(self) -> None:
        if self._own is not None:
            await self._own.close()
