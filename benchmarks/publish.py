"""Writing a benchmark's Markdown report: the table, then the exact command that made it."""

from __future__ import annotations

import shlex
from pathlib import Path


def finish_report(lines: list[str], module: str, argv: list[str], out: str | None) -> str:
    """Append ``Command: `python -m <module> <argv>``` to ``lines``, print the report and write it to ``out``."""
    text = "\n".join([*lines, "", f"Command: `python -m {module} {shlex.join(argv)}`", ""])
    print(text)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text
