"""The command line as typed: help everywhere, one line and exit 2 for bad usage or config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from syncd.cli import cli, run
from syncd.store import Store

COMMANDS = sorted(cli.list_commands(None))  # type: ignore[arg-type]


def syncd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_text(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"Usage: syncd {command}" in out
    assert "--config" in out
    assert len(cli.commands[command].help or "") > 20


def test_unknown_option_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sandbox", "--scal", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "No such option '--scal'. Did you mean '--scale'?" in err


def test_out_of_range_scale_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sandbox", "--scale", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scale" in err and "100<=x<=1000000" in err


def test_unknown_command_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["frobnicate"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_check_reports_a_malformed_config_in_one_line_without_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[hubspot]\naccess_token = "pat-x"\nrequests_per_10s = "lots"\n'
        '[salesforce]\naccess_token = "t"\n'
    )
    done = syncd("check", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert f"{config} [hubspot] requests_per_10s:" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_check_accepts_a_good_config_from_syncd_config_env(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[hubspot]\naccess_token = "pat-x"\n[salesforce]\naccess_token = "t"\n')
    import os

    done = syncd("check", env={**os.environ, "SYNCD_CONFIG": str(config)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"{config}: OK." in done.stdout


def test_check_without_a_config_file_names_the_default_path(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "SYNCD_CONFIG"}
    done = syncd("check", env=env, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "config.toml: file not found. Copy config.example.toml there, or pass --config PATH."
    )


def _closed_stdout(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """syncd with its stdout a pipe whose reader has already gone (`syncd ... | head`, once
    `head` has exited): every write gets EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "syncd", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            cwd=cwd,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),  # click's own output, before any command
        ("status",),  # a rich table
        ("check",),  # click.echo
    ],
)
def test_a_closed_stdout_stops_with_exit_3_and_one_line_not_1(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    store = tmp_path / "syncd.db"
    Store(store).close()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[store]\npath = "{store}"\n[hubspot]\naccess_token = "pat-x"\n'
        '[salesforce]\naccess_token = "t"\n'
    )
    options = () if args == ("--help",) else ("--config", str(config))

    done = _closed_stdout(*args, *options, cwd=tmp_path)

    # 1 would say records were rejected; a command cut short is "stopped early".
    assert done.returncode == 3, done.stderr
    assert done.stderr == (
        "syncd: stopped: standard output was closed before everything was written (its reader,"
        " such as `head`, exited).\n"
    )


def _report_setup(tmp_path: Path) -> Path:
    store = tmp_path / "syncd.db"
    Store(store).close()
    config = tmp_path / "config.toml"
    config.write_text(f'[store]\npath = "{store}"\n')
    return config


def test_out_through_a_symlink_writes_where_it_points_and_keeps_the_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _report_setup(tmp_path)
    (tmp_path / "reports").mkdir()
    real = tmp_path / "reports" / "funnel.csv"
    real.write_text("old\n")
    link = tmp_path / "latest.csv"
    link.symlink_to(real)

    code = run(["report", "funnel", "--format", "csv", "--out", str(link), "--config",
                str(config)])

    assert code == 0, capsys.readouterr().err
    assert link.is_symlink() and link.resolve() == real
    assert real.read_text().startswith("section,group,stage")
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["funnel.csv"]


def test_out_to_a_fifo_writes_into_it_instead_of_replacing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    config = _report_setup(tmp_path)
    fifo = tmp_path / "report.pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()), daemon=True)
    reader.start()

    code = run(["report", "funnel", "--format", "csv", "--out", str(fifo), "--config",
                str(config)])

    reader.join(10)
    assert code == 0, capsys.readouterr().err
    assert received and received[0].startswith("section,group,stage")
    assert fifo.is_fifo()


def test_out_to_dev_stdout_appends_where_the_shell_points_it(tmp_path: Path) -> None:
    """`syncd report ... --out /dev/stdout >> log.csv`: the shell's descriptor, appended to, not
    a file replaced behind it (its earlier lines were lost)."""
    config = _report_setup(tmp_path)
    log = tmp_path / "log.csv"
    log.write_text("earlier line\n")
    with log.open("a") as appended:
        done = subprocess.run(
            [sys.executable, "-m", "syncd", "report", "funnel", "--format", "csv", "--out",
             "/dev/stdout", "--config", str(config)],
            stdout=appended, stderr=subprocess.PIPE, text=True, timeout=60, cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    assert text.startswith("earlier line\nsection,group,stage")
    assert "Wrote" not in text


def test_out_replacing_a_file_keeps_its_permissions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _report_setup(tmp_path)
    private = tmp_path / "refused.csv"
    private.write_text("old\n")
    private.chmod(0o600)

    code = run(["errors", "export", "--out", str(private), "--config", str(config)])

    assert code == 0, capsys.readouterr().err
    assert private.read_text().startswith("id,system,object")
    assert private.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "refused.csv",
                                                          "syncd.db"]
