"""A fresh clone has everything it needs: no test or module reads outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CODE = ("tests", "gateway", "channels", "simulator", "bench", ".ci")
# The notes folder beside the checkout, which a clone does not have, however a path
# names it: up one level, as a path part, absolutely, or as parents[N] / it.  Built
# from its name so that this guard itself names no such path.
BESIDE = "shared"
OUTSIDE = re.compile(rf"\.\./{BESIDE}\b|[\"']{BESIDE}[\"']\s*/|/work/{BESIDE}\b|parents\[\d+\]\s*/\s*[\"']{BESIDE}")
DOCUMENT = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.md)\b")


def tracked(*folders: str) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--", *folders], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.stdout.decode().split("\0") if name]


def texts(*folders: str):
    for path in tracked(*folders):
        if path.suffix in (".py", ".md", ".lua", ".toml", ".html", ".txt", "") and path.is_file():
            yield path, path.read_text(encoding="utf-8", errors="replace")


def test_no_tracked_file_reads_a_folder_beside_the_repository():
    this = Path(__file__).resolve()
    offenders = [f"{path.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}"
                 for path, text in texts(*CODE) if path != this
                 for m in OUTSIDE.finditer(text)]
    assert offenders == []


def test_every_document_the_code_names_is_in_the_repository():
    missing = sorted({f"{path.relative_to(ROOT)}: {name}"
                      for path, text in texts(*CODE)
                      for name in DOCUMENT.findall(text)
                      if not (ROOT / name).is_file() and not (path.parent / name).is_file()})
    assert missing == []


def test_the_reference_data_names_its_source_and_licence():
    notes = (ROOT / "tests" / "standards" / "README.md").read_text(encoding="utf-8")
    for data in (ROOT / "tests" / "standards").glob("*.json"):
        assert data.name in notes
    assert "twilio/twilio-oai" in notes and "Apache" in notes and "MIT" in notes
