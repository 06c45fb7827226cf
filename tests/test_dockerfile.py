"""The container, checked without a Docker engine: the Dockerfile read instruction by
instruction, and its HEALTHCHECK command run for real against a live and a dead server."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syncd.cli import cli
from syncd.metrics import Health, Metrics, PassOutcome
from syncd.server import StatusServer, StatusSources

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped.removesuffix("\\").strip() + " "
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def arguments_of(keyword: str) -> list[str]:
    return [arguments for name, arguments in instructions() if name == keyword]


def test_image_builds_on_slim_python_311() -> None:
    assert arguments_of("FROM") == ["python:3.11-slim"]


def test_image_runs_as_the_non_root_user_10001() -> None:
    users = arguments_of("USER")
    assert users and users[-1].split(":")[0] == "syncd"
    steps = " ".join(arguments_of("RUN"))
    assert "useradd --system --uid 10001 --gid syncd" in steps
    # Nothing after USER runs as root again.
    names = [name for name, _ in instructions()]
    assert "RUN" not in names[names.index("USER"):]


def test_image_installs_syncd_without_dev_extras() -> None:
    installs = [step for step in arguments_of("RUN") if "pip install" in step]
    assert len(installs) == 1
    assert "pip install . " in installs[0] + " " and "[dev]" not in installs[0]
    for copied in arguments_of("COPY"):
        *sources, _ = copied.split()
        assert all((ROOT / source).exists() for source in sources), copied


def test_image_keeps_data_on_a_volume_and_reads_config_from_mount_or_env() -> None:
    assert arguments_of("VOLUME") == ["/data"]
    assert arguments_of("WORKDIR")[-1] == "/data"
    env = " ".join(arguments_of("ENV"))
    assert "SYNCD_CONFIG=/config/config.toml" in env
    assert "SYNCD_STORE__PATH=/data/syncd.db" in env
    assert arguments_of("EXPOSE") == ["9464"]


def test_healthcheck_runs_the_healthcheck_module_and_cmd_is_syncd_run() -> None:
    (healthcheck,) = arguments_of("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert "--interval=" in options and "--timeout=" in options
    assert json.loads(command) == ["python", "-m", "syncd.healthcheck"]
    assert [json.loads(cmd) for cmd in arguments_of("CMD")] == [["syncd", "run"]]


def test_cmd_names_the_installed_console_script_and_its_command() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["syncd"] == "syncd.cli:main"
    assert "run" in cli.commands


def test_dockerignore_keeps_venv_tests_and_stores_out_of_the_context() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "tests", ".git", "*.db", "*.db-*", "sandbox-ca", "config.toml"} <= ignored


# --- the HEALTHCHECK command, run for real -------------------------------------------------


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[StatusServer, Health]]:
    health = Health(started_at=NOW - timedelta(hours=1), interval=timedelta(minutes=5))
    sources = StatusSources(tmp_path / "syncd.db", health, Metrics(), {}, lambda: NOW)
    server = StatusServer(sources, port=0, host="127.0.0.1").start()
    try:
        yield server, health
    finally:
        server.stop()


def healthcheck(environ: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNCD_")}
    return subprocess.run([sys.executable, "-m", "syncd.healthcheck"], capture_output=True,
                          text=True, timeout=30, cwd=cwd,
                          env={**env, "PYTHONPATH": str(ROOT), **environ})


def test_healthcheck_exits_0_against_a_healthy_daemon(
    live: tuple[StatusServer, Health], tmp_path: Path
) -> None:
    server, health = live
    health.pass_finished(PassOutcome(7, NOW - timedelta(minutes=1), NOW, "ok"))
    done = healthcheck({"SYNCD_SERVER__PORT": str(server.port)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"http://127.0.0.1:{server.port}/healthz: 200" in done.stdout


def test_healthcheck_exits_1_with_the_reason_against_a_failing_daemon(
    live: tuple[StatusServer, Health], tmp_path: Path
) -> None:
    server, health = live
    health.pass_finished(PassOutcome(8, NOW - timedelta(minutes=1), NOW, "stopped",
                                     "Salesforce session expired"))
    config = tmp_path / "config.toml"
    config.write_text(f"[server]\nport = {server.port}\n")  # the port from the config file
    done = healthcheck({"SYNCD_CONFIG": str(config)}, tmp_path)
    assert done.returncode == 1
    assert ": 503 " in done.stderr and "Salesforce session expired" in done.stderr


def test_healthcheck_exits_1_when_nothing_listens(
    live: tuple[StatusServer, Health], tmp_path: Path
) -> None:
    server, _ = live
    port = server.port
    server.stop()
    done = healthcheck({"SYNCD_SERVER__PORT": str(port)}, tmp_path)
    assert done.returncode == 1
    assert "no answer" in done.stderr


def test_healthcheck_imports_only_the_standard_library() -> None:
    probe = ("import sys, syncd.healthcheck; "
             "print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)})
    loaded = set(shlex.split(done.stdout))
    heavy = {"pydantic", "prometheus_client", "requests", "urllib3", "hubspot",
             "simple_salesforce", "apscheduler", "click", "rich", "sqlite_utils"}
    assert not loaded & heavy
    assert "syncd" in loaded


def test_healthcheck_port_comes_from_env_then_config_then_9464(tmp_path: Path) -> None:
    from syncd.healthcheck import DEFAULT_PORT, port

    config = tmp_path / "config.toml"
    config.write_text('[server]\nport = "${METRICS_PORT}"\n')
    assert port({"SYNCD_CONFIG": str(config), "METRICS_PORT": "9100"}) == 9100
    assert port({"SYNCD_CONFIG": str(config), "METRICS_PORT": "9100",
                 "SYNCD_SERVER__PORT": "9200"}) == 9200
    assert port({"SYNCD_CONFIG": str(tmp_path / "missing.toml")}) == DEFAULT_PORT == 9464


@pytest.mark.parametrize(
    "text,expected",
    [
        ("\ufeff[server]\nport = 9300\n", 9300),  # saved with a byte-order mark: read as syncd does
        ("server = 3\n", 9464),  # not a table: the daemon says so; the probe takes the default
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", 9464),  # too deep for tomllib
        ("[server\n", 9464),  # not TOML
    ],
    ids=["bom", "server_not_a_table", "nested_too_deeply", "not_toml"],
)
def test_healthcheck_port_survives_an_odd_config(tmp_path: Path, text: str, expected: int) -> None:
    from syncd.healthcheck import port

    config = tmp_path / "config.toml"
    config.write_text(text, encoding="utf-8")
    assert port({"SYNCD_CONFIG": str(config)}) == expected


@pytest.mark.parametrize(
    "environ,config,expected",
    [
        ({"SYNCD_SERVER__PORT": "99999999999999999999"}, None,
         'environment SYNCD_SERVER__PORT: expected a port from 1 to 65535, '
         'got "99999999999999999999"'),
        ({"SYNCD_SERVER__PORT": "9" * 5000}, None,
         f'environment SYNCD_SERVER__PORT: expected a port from 1 to 65535, got "{"9" * 40}…"'),
        ({"SYNCD_SERVER__PORT": "abc"}, None,
         'environment SYNCD_SERVER__PORT: expected a port from 1 to 65535, got "abc"'),
        ({}, "[server]\nport = 99999999999999999999\n",
         '{config} [server] port: expected a port from 1 to 65535, got "99999999999999999999"'),
        ({"P": "70000"}, '[server]\nport = "${P}"\n',
         '{config} [server] port: expected a port from 1 to 65535, got "70000"'),
        ({"SYNCD_SERVER__PORT": "0"}, None,
         "environment SYNCD_SERVER__PORT: 0 lets the daemon take any free port, which this "
         "probe cannot find; set a fixed port"),
    ],
    ids=["env_overflow", "env_5000_digits", "env_not_a_number", "config_overflow",
         "config_variable_past_65535", "port_zero"],
)
def test_healthcheck_with_a_port_it_cannot_probe_is_one_line_naming_it_exit_1(
    tmp_path: Path, environ: dict[str, str], config: str | None, expected: str
) -> None:
    path = tmp_path / "config.toml"
    if config is not None:
        path.write_text(config)
    done = healthcheck({"SYNCD_CONFIG": str(path), **environ}, tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"syncd healthcheck: {expected.replace('{config}', str(path))}\n"


def test_healthcheck_takes_the_default_port_when_the_config_is_a_fifo(tmp_path: Path) -> None:
    from syncd.healthcheck import DEFAULT_PORT, port

    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo)  # read, it would hang the probe until Docker's timeout
    assert port({"SYNCD_CONFIG": str(fifo)}) == DEFAULT_PORT
    assert port({"SYNCD_CONFIG": "/dev/zero"}) == DEFAULT_PORT
