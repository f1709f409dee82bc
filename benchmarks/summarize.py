"""Summarise a pytest-benchmark JSON file (`pytest benchmarks --benchmark-json=FILE`) as the
Markdown table kept in benchmarks/README.md, with the issue 2-5 goals that compare a scenario
with its baseline measured in the same run.

    python -m benchmarks.summarize FILE
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _fmt_s(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} µs"


def summarize(report: dict[str, Any]) -> str:
    rows = report["benchmarks"]
    by = {b["name"]: b for b in rows}
    lines = ["| group | scenario | median | min | rounds | extra |", "|---|---|---:|---:|---:|---|"]
    for b in sorted(rows, key=lambda b: (b["group"] or "", b["name"])):
        st = b["stats"]
        extra = ", ".join(f"{k}={v:,.0f}" if isinstance(v, (int, float)) else f"{k}={v}"
                          for k, v in b.get("extra_info", {}).items())
        lines.append(f"| {b['group']} | `{b['name']}` | {_fmt_s(st['median'])} | "
                     f"{_fmt_s(st['min'])} | {st['rounds']} | {extra} |")

    def med(name: str) -> float | None:
        b = by.get(name)
        return None if b is None else float(b["stats"]["median"])

    goals: list[tuple[str, float | None, float | None, float, bool]] = [
        # (goal, mkts median, baseline median, required ratio, mkts time may be at most
        # ratio x baseline (True) / baseline time must be at least ratio x mkts (False))
        ("full-year read ≥ 0.5× the raw memmap rate (issue 2)", med("test_full_year_read_mkts"),
         med("test_full_year_read_raw_memmap"), 2.0, True),
        ("one-day read p50 within 2× raw (issue 2)", med("test_one_day_read_mkts"),
         med("test_one_day_read_raw_memmap"), 2.0, True),
        ("1-row appends sync=always ≥ 0.5× raw os.write+os.fsync (issue 3)",
         med("test_append_1_row_mkts[always]"),
         med("test_append_1_row_raw[raw os.write + os.fsync]"), 2.0, True),
        ("bulk write sync=always ≥ 0.5× raw writes + one fsync (issue 3)",
         med("test_bulk_write_mkts[sync=always, write per symbol]"),
         med("test_bulk_write_raw[raw pwrite + one fdatasync per file]"), 2.0, True),
        ("1-row write with ondiskagg ≤ 3× the write alone, sync=always: a stream of writes, "
         "cost per write (issue 5)",
         med("test_write_stream_with_ondiskagg[ondiskagg 4 destinations-always]"),
         med("test_write_stream_with_ondiskagg[no triggers-always]"), 3.0, True),
        ("1-row write with ondiskagg ≤ 3× the write alone, sync=off: a stream of writes, "
         "cost per write (issue 5)",
         med("test_write_stream_with_ondiskagg[ondiskagg 4 destinations-off]"),
         med("test_write_stream_with_ondiskagg[no triggers-off]"), 3.0, True),
        ("single-tick append at 10^5 ticks/interval ≤ 1.5× at 10^2 (issue 4: must not grow)",
         med("test_single_tick_append[10^5 ticks in interval]"),
         med("test_single_tick_append[10^2 ticks in interval]"), 1.5, True),
    ]
    lines += ["", "| goal | measured | verdict |", "|---|---|---|"]
    for text, m, base, need, _ in goals:
        if m is None or base is None:
            continue
        ratio = m / base
        lines.append(f"| {text} | {ratio:.2f}× the baseline's time ({_fmt_s(m)} vs "
                     f"{_fmt_s(base)}) | {'met' if ratio <= need else 'NOT met'} |")
    for sync in ("always", "off"):
        a = med(f"test_write_1_row_with_ondiskagg[ondiskagg 4 destinations-{sync}]")
        b = med(f"test_write_1_row_with_ondiskagg[no triggers-{sync}]")
        if a and b:
            lines.append(f"| … one write + flush() at a time (until the aggregates are current), "
                         f"sync={sync} | {a / b:.2f}× ({_fmt_s(a)} vs {_fmt_s(b)}) | info (not "
                         "the goal's measure) |")
    t1, t4 = med("test_writer_threads_always[1]"), med("test_writer_threads_always[4]")
    g1 = med("test_writer_threads_raw_group_commit[1]")
    g4 = med("test_writer_threads_raw_group_commit[4]")
    if t1 and t4:
        speed = (4 * t1) / t4  # 4 threads make 4x the appends
        ceiling = ""
        if g1 and g4:  # same appends per thread as the mkts scenario
            ceiling = (f"; a minimal pure-Python group commit (raw os.write + fdatasync) in the "
                       f"same run: {(4 * g1) / g4:.2f}×, mkts at 4 threads {g4 / t4:.2f}× its "
                       f"rate")
        lines.append(f"| 4 writer threads ≥ 2× one thread, sync=always (issue 3) | {speed:.2f}× "
                     f"the appends/s{ceiling} | {'met' if speed >= 2 else 'NOT met'} |")
    for handle in ("writer", "readonly"):
        one = by.get(f"test_multi_year_read_mkts[{handle}-one year]")
        two = by.get(f"test_multi_year_read_mkts[{handle}-two years]")
        if one and two:  # per row: the two reads return different numbers of rows
            r1 = one["extra_info"]["rows"] / one["stats"]["median"]
            r2 = two["extra_info"]["rows"] / two["stats"]["median"]
            ceiling = ""
            raw1 = by.get("test_multi_year_read_raw[one year]")
            raw2 = by.get("test_multi_year_read_raw[two years]")
            if raw1 and raw2:  # the same gathers in plain numpy, same run
                q1 = raw1["extra_info"]["rows"] / raw1["stats"]["median"]
                q2 = raw2["extra_info"]["rows"] / raw2["stats"]["median"]
                ceiling = f"; raw numpy gathers in the same run: {q2 / q1:.2f}×"
            lines.append(f"| multi-year read ≥ 0.8× the single-year rate per row, {handle} "
                         f"handle (issue 17) | {r2 / r1:.2f}× ({r2 / 1e6:.0f} M vs "
                         f"{r1 / 1e6:.0f} M rows/s){ceiling} | "
                         f"{'met' if r2 >= 0.8 * r1 else 'NOT met'} |")
    off = med("test_append_1_row_mkts[off]")
    if off:
        lines.append(f"| sync=off ≥ 50 000 1-row appends/s (issue 3) | {1 / off:,.0f}/s (p50 "
                     f"{_fmt_s(off)}) | {'met' if 1 / off >= 50_000 else 'NOT met'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0]) as f:
        report = json.load(f)
    m = report.get("machine_info", {})
    print(f"pytest-benchmark {report.get('version', '')}, {report.get('datetime', '')}, "
          f"{m.get('cpu', {}).get('brand_raw', '')}, python {m.get('python_version', '')}, "
          f"commit {report.get('commit_info', {}).get('id', '')[:10]}"
          f"{' (dirty)' if report.get('commit_info', {}).get('dirty') else ''}\n")
    print(summarize(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
