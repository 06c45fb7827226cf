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
