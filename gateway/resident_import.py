"""A file of residents into the registry (`gateway residents import`, the demo's city):
the whole file is checked first, then written in chunks with a progress bar."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .config import Settings
from .crypto import Vault
from .registry import Registry, check_import, parse_import, sort_import
from .terminal import progress


async def import_file(settings: Settings, file: Path, fmt: str, redis, *,
                      skip_bad_rows: bool = False) -> tuple[Counter, list[dict]]:
    """(created/updated/unchanged counts, the bad lines' errors when skipping them)."""
    with progress() as bar:
        task = bar.add_task("checking", total=None)
        records = parse_import(file.read_bytes(), fmt)
        residents, errors = sort_import(records) if skip_bad_rows else (check_import(records), [])
        bar.update(task, description="importing", total=len(residents), completed=0)
        registry = Registry(redis, Vault.of(settings))
        counts = Counter()
        for i in range(0, len(residents), 1000):
            chunk = residents[i:i + 1000]
            counts += await registry.import_many(chunk)
            bar.advance(task, len(chunk))
    return counts, errors
