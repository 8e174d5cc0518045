"""Rule codes are unique, and every rule has exactly one document with the required sections."""

from __future__ import annotations

import re

from paraminspect.docs import docs_dir, rule_doc
from paraminspect.rules import all_rules

SECTIONS = (
    "What it does",
    "Why it matters",
    "Example",
    "Use instead",
    "Fix",
    "Which formats can show it",
)


def test_codes_and_names_are_unique_and_well_formed() -> None:
    rules = all_rules()
    codes = [r.code for r in rules]
    names = [r.name for r in rules]
    assert len(codes) == len(set(codes)) and len(names) == len(set(names))
    for rule in rules:
        assert re.fullmatch(r"PI\d{3}", rule.code), rule
        assert re.fullmatch(r"[a-z0-9-]+", rule.name), rule


def test_every_rule_has_exactly_one_document() -> None:
    docs = sorted(p.name for p in docs_dir().glob("PI*.md"))
    codes = {r.code for r in all_rules()}
    assert sorted({d[:5] for d in docs}) == sorted(codes)
    for rule in all_rules():
        matching = [d for d in docs if d.startswith(rule.code + "-")]
        assert matching == [f"{rule.code}-{rule.name}.md"], matching


def test_documents_have_every_section() -> None:
    for rule in all_rules():
        doc = rule_doc(rule.code)
        assert doc is not None
        for section in SECTIONS:
            names = section if isinstance(section, tuple) else (section,)
            assert any(_heading(doc.text, name) for name in names), (
                f"{rule.code} lacks '## {names[0]}'"
            )
        assert doc.summary


def _heading(text: str, name: str) -> bool:
    """``## name`` exactly, with a body under it."""
    match = re.search(rf"^## {re.escape(name)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return bool(match and match.group(1).strip())


def test_documents_stand_on_their_own() -> None:
    """A shipped document must not send the reader to a file the package does not ship."""
    for rule in all_rules():
        doc = rule_doc(rule.code)
        assert doc is not None
        references = re.findall(r"[\w./-]+\.md\b", doc.text)
        assert not references, f"{rule.code} points to {references}, not shipped in the package"


def test_rule_command_prints_the_document() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "paraminspect", "rule", "PI201"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    for heading in ("## What it does", "## Why it matters", "## Example", "## Use instead",
                    "## Fix", "## Which formats can show it"):
        assert heading in proc.stdout

