"""Every reference to a document resolves: the file exists, and so does the section, heading,
anchor or rule it names (docs/design.md §11 gives the forms).

Scanned: the code and tests (engine/ wal/ plugins/ mkts/ benchmarks/ tests/), docs/*.md,
README.md, CHANGELOG.md and mkts.yml. A reference is a path ending in `.md`, optionally
followed by `§N` (a section of a numbered page; `§N–§M` a range), by a rule label after the
number (docs/design.md §9 R3), by a heading in double quotes, or by `#anchor` (markdown
links). Paths are from the repository root; a page in docs/ may also name a page relative to
itself and use a bare `§N` for its own sections. A `§N` in code must follow a page.

The synthetic texts below are built from pieces (`SECT`, `MD`) so that this file's own text
holds no made-up reference.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from harness.docpages import ROOT, headings, is_numbered, section

SCAN_DIRS = ("engine", "wal", "plugins", "mkts", "benchmarks", "tests")
SCAN_FILES = ("README.md", "CHANGELOG.md", "mkts.yml")
SUFFIXES = (".py", ".md", ".yml", ".yaml", ".toml", ".cfg", ".txt")
# File names the code writes (benchmark reports), not references to documents.
OUTPUT_NAMES = {"compare-smoke.md"}

_SEC = r"§\d+(?:\.\d+)*"
REFERENCE = re.compile(
    r"(?<![\w./\\-])(?P<path>[\w.-]+(?:/[\w.-]+)*\.md)(?![\w-])"
    r"(?:#(?P<anchor>[\w-]+))?"
    rf"(?:[ \t]+(?P<sec>{_SEC}(?:[ \t]*[–-][ \t]*§?\d+(?:\.\d+)*)?)(?:[ \t]+(?P<rule>R\d+)\b)?"
    r'|[ \t]+"(?P<title>[^"\n]+)")?'
)
BARE_SECTION = re.compile(rf"(?P<sec>{_SEC}(?:[ \t]*[–-][ \t]*§?\d+(?:\.\d+)*)?)")


@dataclass(frozen=True)
class Ref:
    where: str  # "path:line" of the citing text
    text: str  # the reference as written


def _files() -> list[Path]:
    out = [ROOT / name for name in SCAN_FILES]
    out += sorted((ROOT / "docs").glob("*.md"))
    for top in SCAN_DIRS:
        for dirpath, dirnames, filenames in os.walk(ROOT / top):  # symlinks not followed
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            out += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(SUFFIXES)]
    return out


def _numbers(sec: str) -> list[str]:
    """The section numbers of a `§N` or of both ends of a range `§N–§M`."""
    return re.findall(r"\d+(?:\.\d+)*", sec)


def _check_sections(page: str, text: str, sec: str, rule: str | None) -> str | None:
    hs = headings(text)
    if not is_numbered(hs):
        return f"{page} has no numbered sections; cite it by a heading in quotes"
    numbers = _numbers(sec)
    known = {h.number for h in hs if h.number is not None}
    for n in numbers:
        if n not in known:
            return f"{page} has no section §{n}"
    if len(numbers) == 2 and [int(x) for x in numbers[0].split(".")] >= \
            [int(x) for x in numbers[1].split(".")]:
        return f"the range {sec} is empty or backwards"
    if rule is not None:
        body = section(text, numbers[0])
        if not re.search(rf"\*\*{rule}\b", body):
            return f"{page} §{numbers[0]} defines no rule {rule}"
    return None


def _check_title(page: str, text: str, title: str) -> str | None:
    hs = headings(text)
    want = title.replace("`", "").strip()
    if is_numbered(hs):
        match = [h for h in hs if h.title == want or h.title.startswith(want + " (")]
        hint = f" (§{match[0].number})" if match and match[0].number else ""
        return f"{page} has numbered sections: cite it as §N, not by heading{hint}"
    if not any(h.text == want for h in hs):
        return f"{page} has no heading {want!r}"
    return None


def _resolve(path: str, citing: Path) -> Path | None:
    candidates = [ROOT / path]
    if citing.suffix == ".md":
        candidates.insert(0, citing.parent / path)
    for c in candidates:
        if c.is_file():
            return c
    return None


def problems(text: str, citing: Path) -> list[str]:
    """What is wrong with the references in `text`, written in the file `citing`."""
    out: list[str] = []
    rel = citing.relative_to(ROOT).as_posix() if citing.is_relative_to(ROOT) else str(citing)
    own_page = citing.suffix == ".md" and citing.parent == ROOT / "docs"
    for lineno, line in enumerate(text.splitlines(), 1):
        covered: list[tuple[int, int]] = []
        for m in REFERENCE.finditer(line):
            covered.append(m.span())
            ref = Ref(f"{rel}:{lineno}", m.group(0))
            path = m.group("path")
            if Path(path).name in OUTPUT_NAMES:
                continue
            target = _resolve(path, citing)
            if target is None:
                out.append(f"{ref.where}: {ref.text!r}: no such file")
                continue
            page = target.relative_to(ROOT).as_posix()
            page_text = target.read_text(encoding="utf-8")
            why = None
            if m.group("sec"):
                why = _check_sections(page, page_text, m.group("sec"), m.group("rule"))
            elif m.group("title"):
                why = _check_title(page, page_text, m.group("title"))
            if why is None and m.group("anchor"):
                if m.group("anchor") not in {h.anchor for h in headings(page_text)}:
                    why = f"{page} has no heading with the anchor #{m.group('anchor')}"
            if why is not None:
                out.append(f"{ref.where}: {ref.text!r}: {why}")
        for m in BARE_SECTION.finditer(line):
            if any(a <= m.start() < b for a, b in covered):
                continue
            where = f"{rel}:{lineno}"
            if not own_page:
                out.append(f"{where}: {m.group(0)!r} names no document (write docs/<page>.md "
                           f"{m.group(0)})")
                continue
            own = citing.read_text(encoding="utf-8") if citing.is_file() else text
            why = _check_sections(rel, own, m.group("sec"), None)
            if why is not None:
                out.append(f"{where}: {m.group(0)!r}: {why}")
    return out


def _scan() -> tuple[list[str], int]:
    found: list[str] = []
    count = 0
    for f in _files():
        text = f.read_text(encoding="utf-8")
        count += sum(1 for line in text.splitlines() for _ in REFERENCE.finditer(line))
        found += problems(text, f)
    return found, count


def test_every_reference_in_the_repository_resolves() -> None:
    found, count = _scan()
    assert count > 100, f"only {count} references found: is the scanner still finding them?"
    assert not found, "unresolved references:\n" + "\n".join(found)


# --- the checker itself, on synthetic text ------------------------------------------------
DOCS, MD, SECT = "docs/", ".md", "§"
PY = ROOT / "engine" / "example.py"  # a code file (need not exist)
MD_PAGE = ROOT / "docs" / f"example{MD}"  # a page in docs/ (need not exist)


@pytest.mark.parametrize("text", [
    f"see {DOCS}wal{MD} {SECT}3",
    f"see {DOCS}wal{MD} {SECT}2–{SECT}4 and {DOCS}design{MD} {SECT}9 R3.",
    f'layout in {DOCS}format{MD} "Header"',
    f'{DOCS}server{MD} "/ws streaming" and {DOCS}format{MD} "Worked example: a 1Min bar"',
    f"[plugins]({DOCS}plugins{MD}#triggers), README{MD}, CHANGELOG{MD}, benchmarks/README{MD}",
    f"compare-smoke{MD} is written by the benchmark runner",
])
def test_real_references_pass(text: str) -> None:
    assert problems(text, PY) == []


@pytest.mark.parametrize(("text", "why"), [
    (f"see {DOCS}nosuchpage{MD}", "no such file"),
    (f"see DESIGN{MD} {SECT}5", "no such file"),
    (f"see {DOCS}wal{MD} {SECT}99", f"no section {SECT}99"),
    (f"see {DOCS}wal{MD} {SECT}4–{SECT}2", "backwards"),
    (f"see {DOCS}wal{MD} {SECT}2–{SECT}42", f"no section {SECT}42"),
    (f'see {DOCS}format{MD} "No such heading"', "no heading"),
    (f'see {DOCS}format{MD} "Slots (fixed buckets)"', "no heading"),
    (f'see {DOCS}wal{MD} "Transaction payload"', f"not by heading ({SECT}10)"),
    (f"see {DOCS}format{MD} {SECT}2", "no numbered sections"),
    (f"see {DOCS}design{MD} {SECT}9 R99", "defines no rule R99"),
    (f"see {DOCS}plugins{MD}#no-such-anchor", "no heading with the anchor"),
    (f"as the reference says ({SECT}4)", "names no document"),
    (f"DESIGN {SECT}5", "names no document"),
])
def test_made_up_references_fail(text: str, why: str) -> None:
    found = problems(text, PY)
    assert len(found) == 1 and why in found[0], found


def test_a_page_in_docs_may_cite_its_own_sections_and_its_neighbours() -> None:
    own = ROOT / "docs" / f"wal{MD}"
    assert problems(f"as in {SECT}5 and {SECT}2–{SECT}4; see [format{MD}](format{MD})", own) == []
    assert f"no section {SECT}77" in problems(f"as in {SECT}77", own)[0]
    assert "no numbered sections" in problems(f"as in {SECT}1", ROOT / "docs" / f"format{MD}")[0]
    # a code file must name the page
    assert "names no document" in problems(f"as in {SECT}5", PY)[0]
    # bare names resolve next to the citing page, or at the root
    assert problems(f"see cli{MD} and README{MD}", MD_PAGE) == []
    assert "no such file" in problems(f"see cli{MD}", PY)[0]
