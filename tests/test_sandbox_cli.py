"""`syncd sandbox` as a user runs it: it serves both emulators and prints a config that works
unchanged with both real client libraries; Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import hubspot
import pytest
from simple_salesforce import Salesforce

from syncd.config import load_settings
from tests.conftest import trusting_session


def wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the sandbox wrote no config in time"
        time.sleep(0.1)


def test_sandbox_config_works_unchanged_with_both_real_clients(tmp_path: Path) -> None:
    config = tmp_path / "sandbox.toml"
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sandbox", "--scale", "200", "--config-out", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        wait_for(config, process)
        settings = load_settings(config, environ={})
        assert settings.store.path == tmp_path / "syncd.db"
        hs = settings.hubspot
        assert hs.access_token is not None and hs.ca_bundle is not None
        client = hubspot.Client.create(
            access_token=hs.access_token.get_secret_value(),
            host=hs.base_url,
            ssl_ca_cert=str(hs.ca_bundle),
        )
        contacts = client.crm.contacts.basic_api.get_page(limit=100)
        assert len(contacts.results) == 100

        sf = settings.salesforce
        assert sf.access_token is not None and sf.ca_bundle is not None
        org = Salesforce(
            instance_url=sf.instance_url,
            session_id=sf.access_token.get_secret_value(),
            version=sf.api_version,
            session=trusting_session(sf.ca_bundle),
        )
        assert org.query("SELECT COUNT() FROM Lead")["totalSize"] > 0
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "HubSpot emulator:" in out and "Salesforce emulator:" in out and str(config) in out
    assert "Traceback" not in err


def test_a_port_in_use_is_one_line_and_exit_2_and_leaves_no_ca_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from syncd.cli import run

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = run(["sandbox", "--scale", "100", "--hubspot-port", str(port), "--config-out",
                    str(tmp_path / "sandbox.toml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        f"The emulators cannot listen on port {port} (Address already in use). Choose free ports "
        "of 1024 or more with --hubspot-port and --salesforce-port, or leave them out for any "
        "free port.\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_demo_out_dir_under_a_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from syncd.cli import run

    (tmp_path / "afile").write_text("x")
    code = run(["demo", "--scale", "100", "--out-dir", str(tmp_path / "afile" / "out")])
    assert code == 2
    assert capsys.readouterr().err == (
        f"syncd demo: --out-dir {tmp_path / 'afile' / 'out'} cannot be used (Not a directory). "
        "Choose a folder you can write to.\n"
    )
