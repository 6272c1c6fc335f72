"""The docs pages and their fenced code blocks, for the tests that run them (docs/README.md states the rule)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return re.findall(r"```(\w+)\n(.*?)```", text, re.S)


def section(page: Path, title: str) -> str:
    """The page's text from the heading `title` to the next heading of the same or a higher level."""
    level = len(title) - len(title.lstrip("#"))
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").split(title + "\n", 1)[1].splitlines():
        fenced ^= line.startswith("```")
        if not fenced and re.match(rf"#{{1,{level}}} ", line):
            break  # the next heading (a `# file.py` line inside a code block is none)
        lines.append(line)
    return "\n".join(lines)


def named_files(blocks: list[tuple[str, str]]) -> dict[str, str]:
    """File name -> body of the python / toml blocks that open with a `# <name>.py` / `# <name>.toml` line."""
    out = {}
    for language, body in blocks:
        first = body.splitlines()[0] if body.strip() else ""
        match = re.fullmatch(r"# ([\w.-]+\.(?:py|toml))", first.strip())
        if language in ("python", "toml") and match:
            out[match.group(1)] = body
    return out
