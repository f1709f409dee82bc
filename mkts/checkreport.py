"""What `mkts check` finds: a `Finding` (an error or a note about a path under the root) and
the `Report` that collects them with the counts the summary prints. The checks themselves
are in check, checkyear, checkwal, checkagg and checkfiles."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mkts.engine.filerecord import FileEntry

MAX_PER_KIND = 5  # findings of one kind listed per file before they are only counted


@dataclass
class Finding:
    """One problem (`error`) or remark (`note`) about a path under the root."""

    severity: str  # "error" | "note"
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class Report:
    root: str
    findings: list[Finding] = field(default_factory=list)
    buckets: int = 0
    files: int = 0
    records: int = 0
    wal_pending: int = 0
    aggregates_checked: int = 0
    in_use_by: str | None = None
    # (bucket key, year) of every file a transaction not yet checkpointed writes
    pending: set[tuple[str, int]] = field(default_factory=set)
    # bucket key -> (bucket directory, its file record) for the record check
    file_records: dict[str, tuple[str, dict[str, FileEntry] | None]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def error(self, where: str, message: str) -> None:
        self.findings.append(Finding("error", where, message))

    def note(self, where: str, message: str) -> None:
        self.findings.append(Finding("note", where, message))


def _rel(root: str, path: str) -> str:
    return os.path.relpath(path, root)
