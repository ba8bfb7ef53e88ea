"""A letter never goes out without its fonts: a Korean large-print letter
rendered with whatever stand-in fontconfig offers may lose its glyphs and its
large print, so it is refused, naming the package to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RENDER = """
from channels.base import Message
from channels.letters import Address, Layout, MissingFont, render
m = Message("al_1", "r1", 0, 0, "ko", "Heat wave", "Severe", "Immediate", headline="폭염 경보", body="물을 드세요.")
try:
    render(m, Address("김영희", ("세종대로 209",), "03151"), Layout(large_print=True))
except MissingFont as e:
    print("refused:", e)
else:
    print("printed")
"""


def test_a_letter_whose_fonts_are_missing_is_refused_loudly_not_printed_small(tmp_path):
    # A fontconfig that knows no fonts at all: the machine as a bare container has it.
    (tmp_path / "fonts").mkdir()
    conf = tmp_path / "fonts.conf"
    conf.write_text(f'<?xml version="1.0"?><fontconfig><dir>{tmp_path / "fonts"}</dir>'
                    f'<cachedir>{tmp_path / "cache"}</cachedir></fontconfig>')
    done = subprocess.run([sys.executable, "-c", RENDER], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"FONTCONFIG_FILE": str(conf), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("refused: no font for ko letters"), done.stdout
    assert "fonts-noto-cjk" in done.stdout
