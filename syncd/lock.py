"""The single-instance lock on a store: one `syncd run` (daemon or `--once`) per SQLite file.

Two passes writing the same store would interleave cursors and double the API spend, so the
second one is refused with one line naming the holder. The lock is `fcntl.flock` on
`<store path>.lock`: the kernel drops it when the holding process ends, however it ends
(SIGKILL and OOM included), so a crash never leaves a stale lock behind. The file holds one
JSON line describing the holder (pid, host, command, start time), read only to word the
refusal; the flock, not the file's content, is what excludes.

flock is per host: two containers on two hosts sharing a network volume are not excluded, which
is why ARCHITECTURE section 7 has several daemons coordinate through PostgreSQL instead.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from syncd.errors import StoreError
from syncd.log import redact

# A holder writes its line right after taking the flock; a refused process that reads the file
# in between sees it empty, so it looks again a few times before wording the refusal without it.
_READ_ATTEMPTS = 5
_READ_PAUSE = 0.02


def lock_path(store_path: Path) -> Path:
    """Where the lock of a store lives: next to it, so that it follows the `[store] path`."""
    return store_path.with_name(store_path.name + ".lock")


def default_command() -> str:
    """How this process was started, as the refusal names it: `syncd run --once`."""
    words = ["syncd", *sys.argv[1:]]
    return redact(" ".join(words))[:200]


class StoreLock:
    """`with StoreLock(path, command="syncd run"):` holds the store for this process.

    Raises `StoreError` (exit 3) when another process holds it. Not reentrant: a second
    `StoreLock` on the same store in the same process is refused too (flock locks belong to
    the open file, not to the process), which is what lets the tests check refusal in-process.
    """

    def __init__(
        self,
        store_path: Path,
        *,
        command: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store_path = store_path
        self.path = lock_path(store_path)
        self.command = command if command is not None else default_command()
        self._clock = clock
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> StoreLock:
        """Take the lock or raise `StoreError` naming its holder."""
        if self._fd is not None:
            return self
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(
                f"Store {self.store_path}: cannot create its lock file {self.path} ({exc}). "
                f"Check that the folder is writable, or point [store] path elsewhere."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreError(refusal(self.store_path, holder)) from None
        self._fd = fd
        self._write_holder(fd)
        return self

    def release(self) -> None:
        """Give the store back. The file stays: removing it would let a third process lock a
        new file while a second still waits on the old one."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def _write_holder(self, fd: int) -> None:
        line = json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": self.command,
                "since": self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            }
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (line + "\n").encode("utf-8"), 0)


def refusal(store_path: Path, holder: dict[str, Any] | None) -> str:
    """The one line a refused process prints."""
    advice = "Stop it first, or point [store] path elsewhere."
    if holder is None:
        return f"Store {store_path} is in use by another syncd process. {advice}"
    return (
        f"Store {store_path} is in use by pid {holder.get('pid', '?')} on host "
        f"{holder.get('host', '?')} ({holder.get('command', 'syncd')}, since "
        f"{holder.get('since', '?')}). {advice}"
    )


def _read_holder(fd: int) -> dict[str, Any] | None:
    for attempt in range(_READ_ATTEMPTS):
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
        if text:
            try:
                found = json.loads(text.splitlines()[0])
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
        if attempt + 1 < _READ_ATTEMPTS:
            time.sleep(_READ_PAUSE)
    return None
