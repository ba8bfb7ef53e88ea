"""The README tells agencies the truth about the policy the code applies."""

from pathlib import Path

from gateway.fallback import markdown

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readmes_severity_table_is_the_one_the_gateway_applies():
    assert markdown().strip() in README.read_text()
