"""The single-instance lock on a store: a second holder is refused with one line naming the
first, and the lock dies with its holder, however the holder dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd import cli
from syncd.errors import EXIT_STOPPED, ConfigError, StoreError
from syncd.lock import StoreLock, lock_path
from tests.harness import World
from tests.org_state import cli_pass

SINCE = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_second_holder_is_refused_with_one_line_naming_pid_host_and_command(
    tmp_path: Path,
) -> None:
    store = tmp_path / "syncd.db"
    holder = StoreLock(store, command="syncd run", clock=lambda: SINCE)
    with holder, pytest.raises(StoreError) as refused:
        StoreLock(store, command="syncd run --once").acquire()
    message = str(refused.value)
    assert message == (
        f"Store {store} is in use by pid {os.getpid()} on host {socket.gethostname()} "
        f"(syncd run, since 2026-03-04T05:06:07Z). Stop it first, or point [store] path "
        f"elsewhere."
    )
    assert "\n" not in message
    assert refused.value.exit_code == EXIT_STOPPED


def test_lock_file_records_the_holder_readable_by_its_owner_only(tmp_path: Path) -> None:
    store = tmp_path / "syncd.db"
    with StoreLock(store, command="syncd run", clock=lambda: SINCE) as lock:
        assert lock.held
        holder = json.loads(lock_path(store).read_text())
        assert holder == {"pid": os.getpid(), "host": socket.gethostname(),
                          "command": "syncd run", "since": "2026-03-04T05:06:07Z"}
        assert lock_path(store).stat().st_mode & 0o777 == 0o600
    assert not lock.held
    assert lock_path(store).read_text() == ""


def test_released_lock_can_be_taken_again(tmp_path: Path) -> None:
    store = tmp_path / "syncd.db"
    first = StoreLock(store, command="syncd run").acquire()
    first.release()
    with StoreLock(store, command="syncd run --once") as second:
        assert second.held
        assert json.loads(lock_path(store).read_text())["command"] == "syncd run --once"


def test_lock_of_a_sigkilled_holder_is_free_again(tmp_path: Path) -> None:
    store = tmp_path / "syncd.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from syncd.lock import StoreLock;"
         "StoreLock(Path(sys.argv[1]), command='syncd run').acquire();"
         "print('locked', flush=True); time.sleep(120)", str(store)],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreError, match=f"in use by pid {holder.pid} "):
            StoreLock(store).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(timeout=10)
    # No cleanup ran in the killed process: the kernel dropped its flock.
    deadline = time.monotonic() + 5
    while True:
        try:
            lock = StoreLock(store, command="syncd run").acquire()
            break
        except StoreError:
            assert time.monotonic() < deadline, "the dead holder's lock was never freed"
            time.sleep(0.05)
    assert lock.held
    lock.release()


def test_refusal_without_a_readable_holder_still_names_the_store(tmp_path: Path) -> None:
    store = tmp_path / "syncd.db"
    with StoreLock(store, command="syncd run"):
        # A holder from an older syncd, or one that has not written its line yet.
        lock_path(store).write_text("")
        with pytest.raises(StoreError) as refused:
            StoreLock(store).acquire()
    assert str(refused.value) == (
        f"Store {store} is in use by another syncd process. Stop it first, or point "
        f"[store] path elsewhere."
    )


def test_a_pass_that_fails_to_open_its_connectors_releases_the_lock(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one process (the daemon's case), a pass that failed before running must not leave
    the lock held: the next pass would be refused by its own process."""
    real = cli._connectors

    def failing(*args: object, **kwargs: object) -> object:
        raise ConfigError("hubspot.access_token: refused (test)")

    monkeypatch.setattr(cli, "_connectors", failing)
    assert cli_pass(world) == 2
    monkeypatch.setattr(cli, "_connectors", real)
    assert cli_pass(world) == 0
