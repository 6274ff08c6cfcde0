"""README.md is the front page and docs/ holds the reference, one file per topic: every relative
link in them leads to a file that exists, and every `#anchor` to a heading of that file (GitHub's
rule: lower case, punctuation dropped, spaces to `-`, `-1`, `-2`… for repeated headings). The
README stays at most 400 lines and lists every docs file.

These tests start no emulator and no gateway: the module overrides the suite's autouse
per-test fixture, so they run alone in well under a second.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import harness

ROOT = harness.REPO_ROOT
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 400

LINK = re.compile(r"\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6}) +(.*?) *#*$")


@pytest.fixture(autouse=True)
def _reset_and_check_leaks():
    """Overrides conftest's per-test fixture: no emulator, no gateway for these tests."""
    yield


def prose_lines(path: Path) -> list[str]:
    """The file's lines outside fenced code blocks."""
    out, fence = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if not fence:
            out.append(line)
    return out


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose_lines(path):
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[str]:
    # Joined so that a link whose text wraps onto the next line is still one match.
    return LINK.findall("\n".join(prose_lines(path)))


def pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_readme_is_a_front_page():
    count = len(README.read_text().splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines, more than {README_MAX_LINES}"


def test_docs_exist_one_title_each():
    files = sorted(DOCS.glob("*.md"))
    assert len(files) >= 10, files
    for path in files:
        titles = [ln for ln in prose_lines(path) if ln.startswith("# ")]
        assert len(titles) == 1, f"{path.name}: {titles}"
        assert path.read_text().startswith("# "), f"{path.name} does not start with its title"


def test_readme_lists_every_docs_file():
    text = README.read_text()
    section = text[text.index("\n## Documentation\n") :]
    listed = {t.split("#")[0] for t in LINK.findall(section) if t.startswith("docs/")}
    present = {f"docs/{p.name}" for p in DOCS.glob("*.md")}
    assert listed == present, f"listed but missing: {sorted(listed - present)}; not listed: {sorted(present - listed)}"


def test_every_relative_link_and_anchor_resolves():
    broken = []
    checked = 0
    for page in pages():
        for target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: …
                continue
            file_part, _, anchor = target.partition("#")
            dest = page if not file_part else (page.parent / file_part).resolve()
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not dest.exists():
                broken.append(f"{where}: no such file")
                continue
            if anchor:
                if dest.suffix != ".md":
                    broken.append(f"{where}: anchor into a non-Markdown file")
                elif anchor not in anchors(dest):
                    broken.append(f"{where}: no heading with that anchor in {dest.relative_to(ROOT)}")
            checked += 1
    assert not broken, "\n".join(broken)
    assert checked > 50, checked  # the README and docs link to each other a lot: this read them


def test_docs_link_back_to_the_front_page():
    # docs/ files reached from a search engine still find the way in.
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text()
        if "../README.md" not in text:
            pytest.fail(f"{path.name} has no link to ../README.md")
