"""Rule documents: ``rules/PIxxx-name.md`` is the single source of every rule's prose."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class RuleDoc:
    code: str
    path: Path
    text: str

    def section(self, title: str) -> str:
        """The body of ``## <title>`` (case-insensitive prefix match), stripped."""
        pattern = re.compile(
            rf"^##\s+{re.escape(title)}[^\n]*\n(.*?)(?=^##\s|\Z)", re.M | re.S | re.I
        )
        match = pattern.search(self.text)
        return match.group(1).strip() if match else ""

    @property
    def summary(self) -> str:
        """First paragraph of 'What it does', on one line."""
        body = self.section("What it does")
        return " ".join(body.split("\n\n", 1)[0].split())


def docs_dir() -> Path:
    """``rules/`` of a source checkout, or the copy packed into the wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "rules", here / "_rule_docs"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("rule documents are missing from this installation")


@cache
def rule_doc(code: str) -> RuleDoc | None:
    try:
        folder = docs_dir()
    except FileNotFoundError:
        return None
    for path in sorted(folder.glob(f"{code}-*.md")):
        return RuleDoc(code=code, path=path, text=path.read_text(encoding="utf-8"))
    return None
