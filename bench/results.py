"""bench/RESULTS.md: each figure rewrites only its own marked section, so figures run alone keep the others."""

from __future__ import annotations

import statistics
from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"


def markdown_table(rows: list[tuple[str, str, str, str]]) -> str:
    """The figures' table: one row per figure, ours against the peer measured in the same run."""
    header = "| figure | seabox | peer measured in the same run | ratio / detail |\n|---|---|---|---|\n"
    return header + "".join(f"| {a} | {b} | {c} | {d} |\n" for a, b, c, d in rows)


def p50_row(figure: str, ours: list[float], peer: list[float]) -> tuple[str, str, str, str]:
    """A table row of FIGURE: the medians of OURS and PEER (seconds) in whole milliseconds, and their ratio."""
    a, b = statistics.median(ours) * 1000, statistics.median(peer) * 1000
    return figure, f"{a:.0f} ms", f"{b:.0f} ms", f"{a / b:.2f}x"


def report(name: str, rows: list[tuple[str, str, str, str]], heading: str, notes: str) -> None:
    """Print the figure's table and write it to its section of RESULTS.md between HEADING and NOTES."""
    table = markdown_table(rows)
    print(table)
    write_section(name, heading + "\n\n" + table + "\n" + notes)


def write_section(name: str, body: str) -> None:
    """Replace the section NAME of RESULTS.md with BODY (appended at the end the first time)."""
    start, end = f"<!-- bench {name} -->\n", f"<!-- /bench {name} -->\n"
    block = start + body.rstrip("\n") + "\n" + end
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text)
