"""The files of the mappings folder: where each is found (a file the folder lacks falls back
to the installed default, ARCHITECTURE section 4), reading one as TOML, and the one-line
problem reports every reader of the folder shares, shaped
`<folder>/<file> [<section>] <key>: <what is wrong>. <suggestion>`.
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULTS_FOLDER",
    "Report",
    "display",
    "mapping_path",
    "read_document",
    "shown",
    "suggestion",
]

DEFAULTS_FOLDER = Path(__file__).parent / "default_mappings"


def suggestion(value: str, choices: Iterable[str], shape: str = '"{}"') -> str:
    """` Did you mean "x"?` for the closest choice (written as `shape`), or "" if none is close."""
    folded = {choice.casefold(): choice for choice in choices}
    close = difflib.get_close_matches(value.casefold(), list(folded), n=1, cutoff=0.6)
    return f" Did you mean {shape.format(folded[close[0]])}?" if close else ""


def shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def display(path: Path) -> str:
    # The folder and the file, as an admin knows them: `mappings/person.toml`.
    return f"{path.resolve().parent.name}/{path.name}"


@dataclass
class Report:
    """Problems of one file, each one line: `file [section] key: message`."""

    file: str
    problems: list[str] = field(default_factory=list)

    def add(self, section: str | None, key: str | None, message: str) -> None:
        place = self.file + (f" [{section}]" if section else "") + (f" {key}" if key else "")
        self.problems.append(f"{place}: {message}")


def mapping_path(folder: Path | None, name: str) -> Path:
    """`name`.toml in the folder, else the installed default (ARCHITECTURE section 4)."""
    return _mapping_path(folder, name)


def _mapping_path(folder: Path | None, entity: str) -> Path:
    own = folder / f"{entity}.toml" if folder is not None else None
    return own if own is not None and own.exists() else DEFAULTS_FOLDER / f"{entity}.toml"


def read_document(path: Path, report: Report) -> dict[str, Any] | None:
    """A mapping file's TOML, or None with the reason (encoding, I/O, syntax) in `report`;
    shared by every file in the mappings folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        report.add(None, None, f"not UTF-8 text (line {line}); save the file as UTF-8.")
        return None
    except OSError as error:
        report.add(None, None, f"cannot be read: {error.strerror}.")
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        report.add(*_syntax_problem(text, str(error)))
        return None


def _syntax_problem(text: str, message: str) -> tuple[str | None, str | None, str]:
    """(section, key, message) for a TOML syntax error, naming the line and its table."""
    where = re.search(r"\(at line (\d+), column (\d+)\)", message)
    reason = re.sub(r"\s*\(at [^)]*\)$", "", message)
    if where is None:
        return (
            None,
            None,
            (
                f"invalid TOML at the end of the file: {reason}. Check for an "
                f"unclosed bracket or quote."
            ),
        )
    number = int(where.group(1))
    lines = text.splitlines()[:number]
    headers = re.findall(r"^\s*\[+\s*([^\]]+?)\s*\]+", "\n".join(lines), flags=re.MULTILINE)
    key = re.match(r"\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*(?=[=\s])", lines[-1] if lines else "")
    advice = (
        "the key is set twice in this table; keep one"
        if "overwrite" in reason
        else "check the quotes, brackets and '=' on that line"
    )
    return (
        headers[-1] if headers else None,
        key.group(1) if key else None,
        f"invalid TOML at line {number}, column {where.group(2)}: {reason}; {advice}.",
    )
