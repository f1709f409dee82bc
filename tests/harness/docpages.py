"""Reading the project's Markdown pages as data: headings (numbers, titles, anchors), the text
of a section, fenced code blocks, and the hex dumps of worked examples.

Used by tests/unit/test_doc_references.py (every citation of a page resolves) and
tests/unit/test_doc_examples.py (the worked examples of docs/format.md and docs/wal.md are
what the code writes). Pure text processing, no I/O beyond reading a page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["ROOT", "Heading", "headings", "is_numbered", "anchor", "read_page", "section",
           "code_blocks", "hex_bytes"]

ROOT = Path(__file__).resolve().parents[2]

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+(.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Heading:
    level: int  # 1 for "#", 2 for "##" ...
    text: str  # as written, without the #'s and without backticks
    number: str | None  # "3" for "## 3. Record", None for an unnumbered heading
    title: str  # the text without its number

    @property
    def anchor(self) -> str:
        return anchor(self.text)


def _outside_fences(text: str) -> list[tuple[int, str]]:
    """(line index, line) of the lines that are not inside a fenced code block."""
    out = []
    fenced = False
    for i, line in enumerate(text.splitlines()):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((i, line))
    return out


def _heading(line: str) -> Heading | None:
    m = _HEADING.match(line)
    if m is None:
        return None
    text = m.group(2).replace("`", "").strip()
    n = _NUMBER.match(text)
    number, title = (n.group(1), n.group(2)) if n else (None, text)
    return Heading(len(m.group(1)), text, number, title)


def headings(text: str) -> list[Heading]:
    """The headings of a page in order (lines starting with # outside code blocks)."""
    return [h for _, line in _outside_fences(text) if (h := _heading(line)) is not None]


def is_numbered(hs: list[Heading]) -> bool:
    """A page whose second-level headings are numbered (`## 3. Record`): cited as §N."""
    return any(h.level == 2 and h.number is not None for h in hs)


def anchor(text: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", text.replace("`", "").strip().lower()).replace(" ", "-")


@cache
def read_page(relpath: str) -> str:
    """The text of a page, by its path from the repository root."""
    return (ROOT / relpath).read_text(encoding="utf-8")


def section(text: str, title: str) -> str:
    """The lines under the one heading whose title (or §-number) is `title`, up to the next
    heading of the same or a higher level. KeyError when there is no such heading or more
    than one."""
    lines = text.splitlines()
    found = [(i, h) for i, line in _outside_fences(text)
             if (h := _heading(line)) is not None and title in (h.title, h.number)]
    if len(found) != 1:
        raise KeyError(f"{len(found)} headings titled {title!r}")
    start, head = found[0]
    end = len(lines)
    for i, line in _outside_fences(text):
        h = _heading(line)
        if i > start and h is not None and h.level <= head.level:
            end = i
            break
    return "\n".join(lines[start + 1 : end])


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks of `text`, in order."""
    out: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if _FENCE.match(line):
            if current is None:
                current = []
            else:
                out.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return out


_HEX2 = re.compile(r"^[0-9a-fA-F]{2}$")
_OFFSET = re.compile(r"^(?:([0-9a-fA-F]+):|([0-9a-fA-F]{8}))$")


def hex_bytes(block: str, size: int | None = None) -> bytes:
    """The bytes of a hex dump as the docs write them: per line, optionally an offset
    (`0ffc:` or 8 hex digits), then two-digit hex bytes; a run of three or more spaces starts
    the annotation, and a line that starts with spaces is annotation only. Lines with offsets
    are placed at their offsets into `size` zero bytes (rows not shown are zero); lines
    without are joined in order. ValueError for anything else."""
    rows: list[tuple[int | None, bytes]] = []
    for line in block.splitlines():
        data = re.split(r" {3,}", line.rstrip(), maxsplit=1)[0]
        if not data.strip() or line.startswith(" "):
            continue
        tokens = data.split()
        offset = None
        m = _OFFSET.match(tokens[0])
        if m is not None and len(tokens) > 1 and not _HEX2.match(tokens[0]):
            offset = int(m.group(1) or m.group(2), 16)
            tokens = tokens[1:]
        if not all(_HEX2.match(t) for t in tokens):
            raise ValueError(f"not a line of a hex dump: {line!r}")
        rows.append((offset, bytes(int(t, 16) for t in tokens)))
    if not rows:
        raise ValueError("no hex dump in the block")
    placed = [r for r in rows if r[0] is not None]
    if not placed:
        return b"".join(data for _, data in rows)
    if len(placed) != len(rows):
        raise ValueError("a hex dump mixes lines with and without offsets")
    end = max(off + len(data) for off, data in placed if off is not None)
    out = bytearray(end if size is None else size)
    if len(out) < end:
        raise ValueError(f"the dump reaches byte {end}, past the size {size}")
    for off, data in placed:
        assert off is not None
        out[off : off + len(data)] = data
    return bytes(out)
