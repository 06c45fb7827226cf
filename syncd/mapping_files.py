"""The files of the mappings folder: where each is found (a file the folder lacks falls back
to the installed default, ARCHITECTURE section 4), reading one as TOML, and the one-line
problem reports every reader of the folder shares, shaped
`<folder>/<file> [<section>] <key>: <what is wrong>. <suggestion>`. A report is one line
whatever the file holds: control characters in a key or value are shown escaped.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syncd.config_checks import (
    LARGEST_FILE,
    FileRefused,
    UnparsableToml,
    escaped,
    has_control_characters,
    parse_toml,
    read_small_file,
)

__all__ = [
    "DEFAULTS_FOLDER",
    "Report",
    "display",
    "folder_problem",
    "has_control_characters",
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
    # The folder and the file, as an admin knows them: `mappings/person.toml` (for a symbolic
    # link, the folder holding the link, not its target's).
    return f"{path.parent.resolve().name}/{path.name}"


@dataclass
class Report:
    """Problems of one file, each one line: `file [section] key: message`."""

    file: str
    problems: list[str] = field(default_factory=list)

    def add(self, section: str | None, key: str | None, message: str) -> None:
        place = self.file + (f" [{section}]" if section else "") + (f" {key}" if key else "")
        self.problems.append(escaped(f"{place}: {message}"))


def mapping_path(folder: Path | None, name: str) -> Path:
    """`name`.toml in the folder, else the installed default (ARCHITECTURE section 4)."""
    return _mapping_path(folder, name)


def _mapping_path(folder: Path | None, entity: str) -> Path:
    own = folder / f"{entity}.toml" if folder is not None else None
    try:
        found = own is not None and own.exists()
    except OSError:
        found = True  # there but not reachable: reading it says why
    return own if own is not None and found else DEFAULTS_FOLDER / f"{entity}.toml"


def folder_problem(folder: Path) -> str | None:
    """Why the mappings folder cannot be used (missing, or not listable and enterable), or None.
    It is listed to catch misnamed files, and entered to read them."""
    try:
        os.listdir(folder)
        os.stat(os.path.join(folder, "."))
    except (FileNotFoundError, NotADirectoryError):
        return (
            f"{folder}: the mappings folder does not exist (set [sync] mappings "
            f"in the config, or remove the key to use the installed defaults)."
        )
    except OSError as error:
        return (
            f"{folder}: the mappings folder cannot be read: {error.strerror}. Let the user "
            f"syncd runs as list and enter it (chmod a+rx {folder})."
        )
    return None


def read_document(path: Path, report: Report) -> dict[str, Any] | None:
    """A mapping file's TOML, or None with the reason (encoding, I/O, syntax) in `report`;
    shared by every file in the mappings folder. A pipe or a device in a file's place would
    hang or fill memory: it is refused unread, as is a file too large to be a mapping."""
    try:
        # Editors on Windows may start the file with a byte-order mark; TOML has no use for it.
        text = read_small_file(path).decode("utf-8").removeprefix("\ufeff")
    except FileRefused as refused:
        report.add(
            None,
            None,
            "not a regular file (a pipe or a device); put the mapping file itself there."
            if refused.size is None
            else f"{refused.size:,} bytes, too large for a mapping file (at most "
            f"{LARGEST_FILE:,}); is it the right file?",
        )
        return None
    except UnicodeDecodeError as error:
        line = error.object[: error.start].count(b"\n") + 1
        report.add(None, None, f"not UTF-8 text (line {line}); save the file as UTF-8.")
        return None
    except OSError as error:
        report.add(None, None, f"cannot be read: {error.strerror}.")
        return None
    try:
        return parse_toml(text)
    except tomllib.TOMLDecodeError as error:
        report.add(*_syntax_problem(text, str(error)))
    except UnparsableToml as error:
        report.add(None, None, str(error))
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
