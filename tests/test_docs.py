"""The documentation stays short where it must and never points nowhere.

The README is what a newcomer reads first: it must stay short, keep the two Quick-start commands, list its
own sections, and state the pins ``pyproject.toml`` really has. Every relative link in the README,
``launchers/README.md`` and ``docs/*.md`` must reach an existing file, and an ``#anchor`` a heading of that
file (GitHub's heading ids), so moving text between pages cannot silently break a reference.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted([README, ROOT / "launchers" / "README.md", *(ROOT / "docs").glob("*.md")])
README_MAX_CHARS = 14_000

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def _prose(text: str) -> str:
    """The text without fenced code blocks (a ``# comment`` there is not a heading, a link not a link)."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """GitHub's id of a heading: markup dropped, lower case, punctuation but ``-`` and ``_`` removed, spaces
    to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    kept = (c for c in text if c in " -" or c.isalnum() or unicodedata.category(c) in ("Pc", "Mn", "Mc", "Me"))
    return "".join(kept).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading id of a Markdown file (repeated headings get ``-1``, ``-2``, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for _, title in HEADING.findall(_prose(path.read_text(encoding="utf-8"))):
        base = slug(title)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(path: Path) -> list[str]:
    text = INLINE_CODE.sub("", _prose(path.read_text(encoding="utf-8")))
    return [t for t in LINK.findall(text) if not EXTERNAL.match(t)]


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def broken_links(path: Path) -> list[str]:
    """``target: why`` for each relative link of ``path`` that reaches no file, or no heading of it."""
    problems = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{target}: no file {_shown(dest)}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {_shown(dest)}")
    return problems


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section of a Markdown text."""
    m = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"README has no '## {title}' section"
    return m.group(1)


def test_readme_is_short() -> None:
    size = len(README.read_text(encoding="utf-8"))
    assert size < README_MAX_CHARS, f"README.md has {size} characters; keep it under {README_MAX_CHARS} (move detail to docs/)"


def test_quick_start_is_exactly_make_run_and_make_test() -> None:
    body = section(README.read_text(encoding="utf-8"), "Quick start")
    block = re.search(r"```[a-z]*\n(.*?)```", body, re.S)
    assert block, "the Quick start has no code block"
    commands = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]
    targets = re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M)
    assert {"run", "test"} <= set(targets), "the Makefile lost a target the Quick start promises"


def test_readme_contents_list_every_section() -> None:
    text = README.read_text(encoding="utf-8")
    contents = re.search(r"^\*\*Contents:\*\*(.*?)^$", text, re.M | re.S)
    assert contents, "README has no **Contents:** line"
    listed = {t.lstrip("#") for t in LINK.findall(contents.group(1))}
    sections = {slug(title) for hashes, title in HEADING.findall(_prose(text)) if hashes == "##"}
    assert listed == sections


def test_readme_states_the_real_pins() -> None:
    pins = {}
    for spec in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, version = spec.partition("==")
        pins[name.strip().lower()] = version.strip()
    stated = re.findall(r"`([A-Za-z0-9_.-]+)([=<>!~]=?[^`]*)`", section(README.read_text(encoding="utf-8"), "Why these pins"))
    assert stated, "the README's 'Why these pins' names no pinned package"
    for name, spec in stated:
        if name.lower() not in pins:
            continue  # not a dependency of navitune's
        assert spec == f"=={pins[name.lower()]}", f"README says {name}{spec}; pyproject.toml pins =={pins[name.lower()]}"
    for key in ("hydra-core", "hydra-optuna-sweeper", "optuna"):
        assert key in {n.lower() for n, _ in stated}, f"the README's pins do not mention {key}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    assert broken_links(doc) == []


def test_link_checker_catches_a_broken_file_and_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## Sweeper–launcher `protocol` (v2)\n")
    page.write_text(
        "# Page\n\n[ok](other.md#sweeperlauncher-protocol-v2) [bad file](missing.md) [bad anchor](other.md#nope)\n"
        "[self](#page) `[in code](missing2.md)`\n\n```\n[in a block](missing3.md)\n```\n[web](https://example.com)\n"
    )
    problems = broken_links(page)
    assert [p.split(":")[0] for p in problems] == ["missing.md", "other.md#nope"]
